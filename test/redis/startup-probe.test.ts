import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogLine } from '../support/engine-process.js';
import { waitUntil } from '../support/fixtures.js';
import { startProcessFixture, type ProcessFixture } from '../support/process-fixture.js';

/**
 * A start against a Redis that answers but takes no writes (out of memory under noeviction, a
 * replica) is not refused, since Redis may be failing over at that moment, but it is said at once:
 * every webhook would be answered 503, and only /readyz would have said why.
 */
let f: ProcessFixture;
beforeAll(async () => { f = await startProcessFixture('startup-probe'); });
afterAll(async () => { await f.close(); });

describe('starting against a Redis that takes no writes', () => {
  it('logs an error saying so, with what Redis answered, and still listens', async () => {
    const lines: LogLine[] = [];
    await f.redis.config('SET', 'maxmemory-policy', 'noeviction');
    await f.redis.config('SET', 'maxmemory', '1');
    try {
      const engine = await f.startEngine({}, (line) => lines.push(line));
      expect((await fetch(`${engine.url}/readyz`)).status).toBe(503);
    } finally {
      await f.redis.config('SET', 'maxmemory', '0');
    }
    // The HTTP answers and the log lines come by separate pipes.
    await waitUntil(async () => lines.some((line) => line.msg === 'listening'), 5_000, 'the listening line');
    const said = lines.find((line) => line.msg === 'Redis takes no writes: every webhook is answered 503 until it does');
    expect(said).toMatchObject({ redis: 'refusing-writes', reason: expect.stringMatching(/^Redis refuses writes: OOM command not allowed/) });
    expect(lines.findIndex((line) => line === said)).toBeLessThan(lines.findIndex((line) => line.msg === 'listening'));
  });
});
