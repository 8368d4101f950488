import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { startHarness, type Harness } from '../support/sync-harness.js';

/**
 * Engine.close() (the host's graceful shutdown) must not resolve while a stop it did not start
 * (a passivation, a watchdog restart, an unlink) is still flushing and releasing its lease: the
 * process quits Redis right after close(), and a release sent after that never happens, so the
 * account would stay locked until LEASE_TTL_MS for the next process.
 */
let h: Harness;
beforeAll(async () => {
  // A long TTL and idle timeout: only an explicit release frees the lease within the test.
  h = await startHarness({ engine: { leaseTtlMs: 60_000, idleTimeoutMs: 60_000 } });
});
afterAll(async () => { await h?.close(); });

describe('close() with a stop already under way', () => {
  it('resolves only once that stop released its lease', async () => {
    const account = 'dbid:close-while-stopping';
    await h.linkSynced(account, { '/posts/a.md': '# A' });
    const k = accountKeys(account);
    expect(h.engine.host.actor(account)).toBeDefined();
    expect(await h.redis.get(k.lease)).not.toBeNull();

    // What a passivation does when the idle timer fires: the actor leaves memory at once, its
    // snapshot flush and lease release follow.
    let stopFinished = false;
    const stopping = h.engine.host.stop(account).then(() => { stopFinished = true; });
    await h.engine.close();
    expect(stopFinished).toBe(true);
    expect(await h.redis.get(k.lease)).toBeNull();
    await stopping;
  }, 30_000);
});
