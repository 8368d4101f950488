import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Figure 1's load generator (bench/load-worker.mjs) against a server that answers 20 requests and
 * then drops every connection it is handed: the run must end, with what was never answered
 * counted as failed (a failed request must fail the figure, not hang it or leave the tail).
 */
type Result = { ok: number; failed: number; sent: number };

let server: Server;
let answered = 0;
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (++answered > 20) req.socket.destroy();
      else res.end('');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function run(mode: 'open' | 'closed'): Promise<Result> {
  answered = 0;
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const worker = new Worker(new URL('../bench/load-worker.mjs', import.meta.url), {
    workerData: { mode, url, path: '/', requests: [{ body: '{}', headers: { 'Content-Type': 'application/json' } }], connections: 4, durationMs: 500, rate: 200 },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (m) => resolve(m as Result));
    worker.once('error', reject);
  });
}

describe('the load generator when the server drops its connections', () => {
  it('ends an open loop, counting every scheduled request that got no answer as failed', async () => {
    const result = await run('open');
    expect(result.ok).toBe(20);
    expect(result.failed).toBe(200 * 0.5 - 20); // 100 scheduled in 500 ms at 200/s
  });

  it('ends a closed loop, counting the requests in flight on the dropped connections as failed', async () => {
    const result = await run('closed');
    expect(result.ok).toBe(20);
    expect(result.failed).toBe(result.sent - 20);
    expect(result.failed).toBeGreaterThan(0);
  });
});
