import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CliProcess } from './run-cli.js';

/** A server whose account changes on every poll, so `tail` prints a line each time. */
let server: Server;
let url: string;
let polls = 0;

beforeAll(async () => {
  server = createServer((_req, res) => {
    polls++;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ accountId: 'dbid:a', state: 'downloading', dirty: false, pending: polls, setAside: 0, setAsideFiles: [], folder: '/m', lastSyncedAt: null, lastError: null }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => { await new Promise((resolve) => server.close(resolve)); });

it('tail piped into a reader that leaves (| head -1, | grep -m1 synced) stops quietly with exit 0, no stack trace', async () => {
  const tail = new CliProcess(['tail', 'dbid:a', '--interval', '50', '--url', url, '--token', 'token']);
  // As `head -1` does: read the first line, then close the pipe.
  await new Promise<void>((resolve) => {
    const onData = () => {
      if (!tail.stdout.includes('\n')) return;
      tail.child.stdout!.off('data', onData);
      tail.child.stdout!.destroy();
      resolve();
    };
    tail.child.stdout!.on('data', onData);
  });
  const result = await tail.wait();
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
}, 30_000);
