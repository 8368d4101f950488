import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from './run-cli.js';

/**
 * `--url` pointed at something that is not a Mailroom server (another service, a proxy's own page)
 * answering 2xx JSON of another shape: the CLI says so and exits 1, never a stack trace or a
 * success it did not have.
 */
let server: Server;
let url: string;
let answer: { status: number; body: string } = { status: 200, body: '{"ok":true}' };

beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(answer.status, { 'Content-Type': 'application/json' });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => { await new Promise((resolve) => server.close(resolve)); });

function run(args: string[]) {
  return runMain([...args, '--url', url], { ADMIN_TOKEN: 'token' });
}

describe('a 2xx answer that is not what a Mailroom server answers', () => {
  it.each([
    [['status'], '{"ok":true}'],
    [['status'], '{"accounts":[{"accountId":"x"}]}'],
    // Paging: a `next` that is no cursor, and one that never ends (the same page again and again).
    [['status'], '{"accounts":[],"next":5}'],
    [['status'], '{"accounts":[],"next":"7"}'],
    [['status', 'dbid:a'], '{"ok":true}'],
    [['entries', 'dbid:a'], '{"ok":true}'],
    [['link-url'], '{"ok":true}'],
    [['tail', 'dbid:a'], '{"ok":true}'],
    [['link', 'dbid:a', '--access-token', 'x'], '{"ok":true}'],
    [['resync', 'dbid:a'], '{"ok":true}'],
    [['unlink', 'dbid:a'], '{"ok":true}'],
  ])('%j answered %s: exit 1 saying the answer is not Mailroom\'s, no stack trace, no success', async (args, body) => {
    answer = { status: 200, body };
    const result = await run(args);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^mailroom: .*is it a Mailroom server\?\n$/);
  });
});

describe('a 404 that is not the server saying "not linked"', () => {
  it.each([[['status', 'dbid:a']], [['tail', 'dbid:a']]])(
    '%j against a URL with no Mailroom behind it (a proxy\'s 404 page) does not claim the account is not linked',
    async (args) => {
      answer = { status: 404, body: '<html><body>404 Not Found</body></html>' };
      const result = await run(args);
      expect(result.code).toBe(1);
      expect(result.stderr).not.toMatch(/not linked/);
      expect(result.stderr).toMatch(/^mailroom: GET \/accounts\/dbid%3Aa answered 404/);
    },
  );
});
