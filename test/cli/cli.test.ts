import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStartPage, pressContinue } from '../oauth/oauth-client.js';
import { freePort } from '../support/redis-server.js';
import { ADMIN_TOKEN, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';
import { CliProcess, runCli, runMain } from './run-cli.js';

/** The `mailroom` command as a child process against a running engine's HTTP API. */
let h: Harness;
let env: Record<string, string>;

beforeAll(async () => {
  h = await startHarness();
  env = { MAILROOM_URL: h.url, ADMIN_TOKEN };
});
afterAll(async () => { await h.close(); });

function addAccount(accountId: string, files: Record<string, string>): string {
  const accessToken = `token-${accountId}`;
  h.emulator.model.addAccount(accountId, { accessToken });
  for (const [path, content] of Object.entries(files)) h.emulator.model.writeFile(accountId, path, content);
  return accessToken;
}

/**
 * The flow test starts nine CLI processes one after another (each loads the CLI's TypeScript through
 * tsx): about 1 s each alone, several seconds each when the whole suite shares 2 cores, which once
 * took it past the default 30 s. It asserts what the commands print, never how fast.
 */
const NINE_PROCESS_STARTS_MS = 120_000;

describe('mailroom CLI against a running server', () => {
  it('links, shows the status, lists entries, resyncs and unlinks', { timeout: NINE_PROCESS_STARTS_MS }, async () => {
    const account = 'dbid:cli-flow';
    const token = addAccount(account, { '/Posts/Hello.md': '# Hello\n\nworld', '/notes.txt': 'plain', '/skip/drafts.md': '# draft' });

    const linked = await runCli(['link', account, '--access-token', token, '--ignore', 'skip/**'], env);
    expect(linked).toMatchObject({ code: 0, stderr: '' });
    expect(linked.stdout).toContain(`linked ${account}`);
    await h.waitForIdle(account);

    const status = await runCli(['status', account], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^${account}\\n  state +idle\\n  pending +0 downloads\\n  dirty +no\\n  last synced +\\d{4}-`));
    expect(status.stdout).toMatch(/\n  last error +-\n/);

    const asJson = await runCli(['status', account, '--json'], env);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ accountId: account, state: 'idle', pending: 0, lastError: null });

    const all = await runCli(['status'], env);
    expect(all.code).toBe(0);
    expect(all.stdout.split('\n')[0]).toMatch(/^ACCOUNT +STATE +PENDING +LAST SYNCED +LAST ERROR$/);
    expect(all.stdout).toMatch(new RegExp(`${account} +idle +0 +\\S+ ago +-`));

    const entries = await runCli(['entries', account], env);
    expect(entries.code).toBe(0);
    expect(entries.stdout).toMatch(/\/Posts\/Hello\.md +Hello +\d{4}-/);
    expect(entries.stdout).toMatch(/\/notes\.txt +notes/);
    expect(entries.stdout).not.toContain('drafts');

    const resync = await runCli(['resync', account], env);
    expect(resync).toMatchObject({ code: 0, stderr: '' });
    expect(resync.stdout).toContain(`resync requested for ${account}`);
    await h.waitForIdle(account);

    const unlinked = await runCli(['unlink', account], env);
    expect(unlinked).toMatchObject({ code: 0, stderr: '' });
    expect(unlinked.stdout).toContain(`unlinked ${account}`);
    expect((await h.api(`/accounts/${account}`)).status).toBe(404);

    const again = await runCli(['unlink', account], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`mailroom: ${account} is not linked (mailroom link ${account} --access-token … links it)\n`);
    const missing = await runCli(['status', account], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('is not linked');
  });

  it('link --wait draws the progress of the initial sync and returns once it is idle', async () => {
    const account = 'dbid:cli-wait';
    const files: Record<string, string> = {};
    for (let i = 0; i < 40; i++) files[`/many/file-${String(i).padStart(2, '0')}.md`] = `# File ${i}`;
    addAccount(account, files);
    h.emulator.faults.setLatency(60, 'files/download');
    try {
      // The token from stdin keeps it out of the process list and the shell history.
      const result = await runCli(['link', account, '--access-token', '-', '--wait', '--timeout', '60'], env, `token-${account}\n`);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const lines = result.stdout.trim().split('\n');
      expect(lines[0]).toBe(`linked ${account}; waiting for the sync to finish (Ctrl-C stops waiting, not the sync)`);
      const bars = lines.filter((l) => l.includes('['));
      expect(bars.length).toBeGreaterThan(0);
      for (const bar of bars) expect(bar).toMatch(new RegExp(`^${account}  \\w+  \\[[#-]{24}\\]  \\d+/\\d+ files  \\d+%  \\S+$`));
      expect(lines.at(-1)).toMatch(new RegExp(`^${account} is in sync \\(\\d{4}-.*\\); mirror: .*mirrors/${account}$`));
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    expect(await h.status(account)).toMatchObject({ state: 'idle', pending: 0 });
    expect(await h.engine.entries.list(account)).toHaveLength(40);
  });

  it('link --wait gives up with exit 4 when Dropbox refuses the token', async () => {
    const account = 'dbid:cli-bad-token';
    addAccount(account, { '/a.md': '# A' });
    const result = await runCli(['link', account, '--access-token', 'not-the-token', '--wait', '--timeout', '20'], env);
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/^mailroom: Dropbox refused the credentials of dbid:cli-bad-token \(.+\); link it again with a valid token\n$/);
    // The operator's list of what to act on: that account alone, and what to do about it.
    const awaiting = await runCli(['status', '--state', 'awaitingRelink'], env);
    expect(awaiting.code).toBe(0);
    expect(awaiting.stdout.split('\n').slice(1, 2)).toEqual([expect.stringMatching(/^dbid:cli-bad-token +awaitingRelink /)]);
    expect(awaiting.stdout).toContain('1 account awaiting a re-link');
  });

  it('tail prints one line per change and stops on Ctrl-C with exit 0', async () => {
    const account = 'dbid:cli-tail';
    const token = addAccount(account, { '/a.md': '# A' });
    await h.linkAccount(account, { accessToken: token });
    await h.waitForIdle(account);
    const tail = new CliProcess(['tail', account, '--interval', '50'], env);
    await waitUntil(() => tail.stdout.includes('\n'), 10_000, 'the first tail line');
    expect(tail.stdout).toMatch(new RegExp(`^\\d{4}-\\S+Z  ${account}  idle +pending=0  error=-\\n$`));

    for (let i = 0; i < 20; i++) h.emulator.model.writeFile(account, `/new-${i}.md`, `# New ${i}`);
    h.emulator.faults.setLatency(40, 'files/download');
    try {
      expect((await h.api(`/accounts/${account}/resync`, { method: 'POST' })).status).toBe(202);
      await waitUntil(() => /synced \d{4}-/.test(tail.stdout), 20_000, 'a tail line for the finished run');
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    const lines = tail.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.some((l) => /  (fetching|applying|downloading|finishing) +pending=/.test(l))).toBe(true);
    // Consecutive lines differ (nothing printed twice for an unchanged status).
    const bodies = lines.map((l) => l.replace(/^\S+ {2}/, ''));
    for (let i = 1; i < bodies.length; i++) expect(bodies[i]).not.toBe(bodies[i - 1]);

    tail.child.kill('SIGINT');
    const result = await tail.wait();
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
  });

  it('link-url prints a one-time start link that opens the OAuth flow once; --json prints the server\'s answer', async () => {
    const result = await runCli(['link-url'], env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const [url, hint, ...more] = result.stdout.split('\n');
    expect(url).toMatch(new RegExp(`^${h.url}/oauth/start\\?ticket=[A-Za-z0-9_-]{43}$`));
    expect(hint).toBe('open it in a browser within 10m00s; it works once, and links (or re-links) the Dropbox account signed in there');
    expect(more).toEqual(['']);
    const opened = await pressContinue(await openStartPage(url!));
    expect(opened.status).toBe(303);
    expect(opened.headers.get('location')).toMatch(new RegExp(`^${h.emulator.url}/oauth2/authorize\\?`));
    expect((await fetch(url!, { redirect: 'manual' })).status).toBe(401);

    const asJson = await runCli(['link-url', '--json'], env);
    expect(asJson).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(asJson.stdout)).toEqual({ url: expect.stringMatching(new RegExp(`^${h.url}/oauth/start\\?ticket=`)), expiresInMs: 600_000 });
    // Each call is a new link.
    expect(JSON.parse(asJson.stdout).url).not.toBe(url);
  });

  it('a wrong admin token exits 1 with a clear message', async () => {
    const result = await runCli(['status'], { ...env, ADMIN_TOKEN: 'wrong-token-0123456789' });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe("mailroom: the server refused the admin token (401 unauthorized): pass --token or set ADMIN_TOKEN to the server's ADMIN_TOKEN\n");
    // --token wins over the environment.
    expect((await runCli(['status', '--token', ADMIN_TOKEN], { ...env, ADMIN_TOKEN: 'wrong' })).code).toBe(0);
  });

  it('a refusal of the server (invalid ignore glob) exits 1 with its message', async () => {
    const account = 'dbid:cli-bad-glob';
    const token = addAccount(account, {});
    const result = await runCli(['link', account, '--access-token', token, '--ignore', '['.repeat(600)], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^mailroom: .+\n$/);
  });

  it('no server exits 3 naming the URL', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const result = await runCli(['status', 'dbid:x', '--url', url], { ADMIN_TOKEN });
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(`mailroom: cannot reach the Mailroom server at ${url} (ECONNREFUSED). Is it running? Point --url or MAILROOM_URL at it.\n`);
  });

  it.each([
    [[], 'no command: the usage, exit 0', 0],
    [['--help'], 'help', 0],
  ])('%j prints the usage (%s)', async (args, _what, code) => {
    const result = await runCli(args, env);
    expect(result.code).toBe(code);
    expect(result.stdout).toMatch(/^Usage: mailroom <command> \[options\]/);
  });

  it.each([
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['link'], 'link needs --access-token <token> or --refresh-token <token>'],
    [['link', '--access-token', 'x'], 'link needs an account id: mailroom link <account>'],
    [['unlink'], 'unlink needs an account id: mailroom unlink <account>'],
    [['status', 'a', 'b'], 'status takes one account, got 2: a b'],
    [['status', 'bad id!'], '"bad id!" is not an account id (1-128 characters of A-Z a-z 0-9 : _ . -, not only dots)'],
    [['status', '--wait'], 'status does not take --wait'],
    [['link-url', 'dbid:a'], 'link-url takes no account (the one signed in to Dropbox through the link is linked), got: dbid:a'],
    [['link-url', '--wait'], 'link-url does not take --wait'],
    [['status', '--bogus'], "Unknown option '--bogus'"],
    [['link', 'a', '--access-token', 'x', '--timeout', '5'], '--timeout goes with --wait'],
    [['tail', 'a', '--interval', 'soon'], '--interval must be a positive number, got "soon"'],
    [['status', '--url', 'localhost:8080'], '--url "localhost:8080" must be http:// or https://'],
  ])('bad usage %j exits 2 with the reason and the usage text', async (args, message) => {
    // The first through the real command (exit code and streams); the rest are the parser's messages.
    const result = args[0] === 'frobnicate' ? await runCli(args, env) : await runMain(args, env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')[0]).toBe(`mailroom: ${message}`);
    expect(result.stderr).toContain('Usage: mailroom <command> [options]');
  });

  it('no admin token is a usage error', async () => {
    const result = await runCli(['status'], { MAILROOM_URL: h.url });
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe('mailroom: no admin token: pass --token <token> or set ADMIN_TOKEN');
  });
});
