import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { WAKE_CHANNEL } from '../../src/engine/engine.js';
import type { Lease } from '../../src/ownership/leases.js';
import { openRedis } from '../../src/redis/connection.js';
import { accountKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../support/redis-server.js';
import { APP_SECRET, expectedMirror, readMirror, startHarness, waitUntil, type Harness, type EngineServer } from '../support/sync-harness.js';
import { storedActorState } from '../support/stored-actor.js';

/**
 * Cross-process wake: the owner O holds the account's actor, idle, in memory (no passivation
 * here). A webhook reaches the other process X, which cannot take the lease, so it publishes the
 * wake on `mr:wake`; O delivers it to its actor and syncs. X never runs an actor of its own.
 */
let redisServer: TestRedis;
let h: Harness;
let x: EngineServer;
let watcher: Redis;
const wakes: { accountId: string; type: string }[] = [];
const acquiredByX: (Lease | null)[] = [];

beforeAll(async () => {
  redisServer = await TestRedis.start();
  h = await startHarness({ redisServer, engine: { idleTimeoutMs: 60_000, leaseTtlMs: 2_000, ownerId: 'proc-o' } });
  x = await h.startPeer({ idleTimeoutMs: 60_000, leaseTtlMs: 2_000, ownerId: 'proc-x' }, (engine) => {
    const acquire = engine.leases.acquire.bind(engine.leases);
    engine.leases.acquire = async (accountId) => {
      const lease = await acquire(accountId);
      acquiredByX.push(lease);
      return lease;
    };
  });
  watcher = await openRedis(redisServer.url);
  watcher.on('message', (_channel: string, raw: string) => wakes.push(JSON.parse(raw) as { accountId: string; type: string }));
  await watcher.subscribe(WAKE_CHANNEL);
});
afterAll(async () => {
  watcher?.disconnect();
  await h?.close();
  await redisServer?.stop();
});

const webhook = (url: string, accountId: string) => sendWebhook({ url: `${url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [accountId], attempts: 1 });

async function settled(accountId: string, file: string): Promise<boolean> {
  const k = accountKeys(accountId);
  const [box, state, queued] = await Promise.all([h.redis.hgetall(k.mailbox), storedActorState(h.redis, accountId), h.redis.hlen(k.queue)]);
  return box.status === 'idle' && box.dirty !== '1' && state === 'idle' && queued === 0 && (await readMirror(h.dataDir, accountId)).has(file);
}

describe('a webhook at a process that does not own the account', () => {
  it("reaches the owner's idle actor over mr:wake; the owner syncs and keeps the lease", async () => {
    const acc = 'dbid:wake-owner';
    const k = accountKeys(acc);
    expect((await h.linkAccount(acc)).status).toBe(200);
    h.emulator.model.writeFile(acc, '/posts/first.md', '# First');
    expect((await webhook(h.url, acc)).status).toBe(200);
    await waitUntil(() => settled(acc, '/posts/first.md'), 10_000, 'the first sync');
    const actor = h.engine.host.actor(acc);
    expect(actor?.getSnapshot().value).toBe('idle');
    const holder = await h.redis.get(k.lease);
    expect(holder).toMatch(/^proc-o\|\d+$/);
    const fence = await h.redis.hget(k.fence, 'fence');
    const runs = actor!.getSnapshot().context.runs;
    h.emulator.stats.resetStats();

    for (let round = 1; round <= 3; round++) {
      const seen = wakes.length;
      const file = `/posts/round-${round}.md`;
      h.emulator.model.writeFile(acc, file, `# Round ${round}`);
      expect((await webhook(x.url, acc)).status).toBe(200);
      await waitUntil(() => settled(acc, file), 10_000, `round ${round}: O to sync after the wake`);
      expect(wakes.slice(seen)).toContainEqual({ accountId: acc, type: 'WEBHOOK' });
      // The same actor in memory did the run: no restart, no new grant, X never got the lease.
      expect(h.engine.host.actor(acc)).toBe(actor);
      expect(actor!.getSnapshot().context.runs).toBe(runs + round);
      expect(x.engine.host.actor(acc)).toBeUndefined();
      expect(await h.redis.get(k.lease)).toBe(holder);
      expect(await h.redis.hget(k.fence, 'fence')).toBe(fence);
    }
    expect(acquiredByX.filter((lease) => lease?.accountId === acc)).toEqual([]);
    expect(acquiredByX.length).toBeGreaterThanOrEqual(3); // X tried, and was refused each time
    expect(h.emulator.stats.maxListingsInFlight(acc)).toBeLessThanOrEqual(1);
    expect(await readMirror(h.dataDir, acc)).toEqual(expectedMirror(h.emulator, acc));
  });

  it('keeps one listing at a time when a burst of webhooks hits both processes during a run', async () => {
    const acc = 'dbid:wake-burst';
    const k = accountKeys(acc);
    expect((await h.linkAccount(acc)).status).toBe(200);
    h.emulator.model.writeFile(acc, '/posts/first.md', '# First');
    expect((await webhook(h.url, acc)).status).toBe(200);
    await waitUntil(() => settled(acc, '/posts/first.md'), 10_000, 'the first sync');
    const holder = await h.redis.get(k.lease);
    h.emulator.faults.setLatency(20, 'files/list_folder/continue');
    try {
      for (let n = 0; n < 20; n++) {
        h.emulator.model.writeFile(acc, `/posts/burst-${n}.md`, `# Burst ${n}`);
        expect((await webhook(n % 2 ? x.url : h.url, acc)).status).toBe(200);
      }
      await waitUntil(() => settled(acc, '/posts/burst-19.md'), 15_000, 'the burst to be synced');
    } finally {
      h.emulator.faults.setLatency(0, 'files/list_folder/continue');
    }
    expect(x.engine.host.actor(acc)).toBeUndefined();
    expect(await h.redis.get(k.lease)).toBe(holder);
    expect(acquiredByX.filter((lease) => lease !== null)).toEqual([]);
    expect(h.emulator.stats.maxListingsInFlight(acc)).toBeLessThanOrEqual(1);
    expect(await readMirror(h.dataDir, acc)).toEqual(expectedMirror(h.emulator, acc));
    const entries = Object.values(await h.redis.hgetall(k.entries)).map((raw) => JSON.parse(raw) as { id: string });
    expect(new Set(entries.map((e) => e.id)).size).toBe(21);
    expect(entries).toHaveLength(21);
  });
});
