import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { Engine, WAKE_CHANNEL } from '../../src/engine/engine.js';
import type { Lease } from '../../src/ownership/leases.js';
import { openRedis } from '../../src/redis/connection.js';
import { accountKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../support/redis-server.js';
import { APP_SECRET, expectedMirror, readMirror, startHarness, waitUntil, type Harness, type EngineServer } from '../support/sync-harness.js';
import { storedActorState } from '../support/stored-actor.js';

/**
 * Passivation: an idle actor leaves memory and gives its lease back; the next webhook restores it
 * from Redis. Two engines share one Redis and one data folder (as two processes on one machine):
 * O is the harness's engine, X a second one built the same way. A webhook that lands while the
 * owner passivates (at the owner or at the other process) must never be lost.
 */
const IDLE_MS = 200;
const LEASE_MS = 2_000;

let redisServer: TestRedis;
let h: Harness;
let x: EngineServer;
let watcher: Redis;
const wakes: string[] = [];

beforeAll(async () => {
  redisServer = await TestRedis.start();
  h = await startHarness({ redisServer, engine: { idleTimeoutMs: IDLE_MS, leaseTtlMs: LEASE_MS, ownerId: 'proc-o' } });
  x = await h.startPeer({ idleTimeoutMs: IDLE_MS, leaseTtlMs: LEASE_MS, ownerId: 'proc-x' });
  watcher = await openRedis(redisServer.url);
  watcher.on('message', (_channel: string, raw: string) => wakes.push(raw));
  await watcher.subscribe(WAKE_CHANNEL);
});
afterAll(async () => {
  watcher?.disconnect();
  await h?.close();
  await redisServer?.stop();
});

const O = () => h.engine;
const webhook = (url: string, accountId: string) => sendWebhook({ url: `${url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [accountId], attempts: 1 });

/** Idle everywhere: machine, mailbox, queue; and, when `file` is given, that file is mirrored. */
async function settled(accountId: string, file?: string): Promise<boolean> {
  const k = accountKeys(accountId);
  const [box, state, queued, changes] = await Promise.all([h.redis.hgetall(k.mailbox), storedActorState(h.redis, accountId), h.redis.hlen(k.queue), h.redis.llen(k.changes)]);
  if (box.status !== 'idle' || box.dirty === '1' || state !== 'idle' || queued !== 0 || changes !== 0) return false;
  return file === undefined || (await readMirror(h.dataDir, accountId)).has(file);
}

/** Waits for `settled`; on a timeout says where the account is stuck (mailbox, lease, actors). */
async function waitSettled(accountId: string, file: string | undefined, what: string, timeoutMs = 10_000, extra: () => Promise<boolean> | boolean = () => true): Promise<void> {
  try {
    await waitUntil(async () => (await settled(accountId, file)) && (await extra()), timeoutMs, what);
  } catch (error) {
    const k = accountKeys(accountId);
    const state = {
      mailbox: await h.redis.hgetall(k.mailbox),
      actor: await storedActorState(h.redis, accountId),
      lease: await h.redis.get(k.lease),
      inMemory: { O: O().host.actor(accountId)?.getSnapshot().value, X: x.engine.host.actor(accountId)?.getSnapshot().value },
    };
    throw new Error(`${(error as Error).message}; stuck at ${JSON.stringify(state)}`);
  }
}

/** Which engine runs the account's actor right now (at most one may). */
function owners(accountId: string): Engine[] {
  return [O(), x.engine].filter((engine) => engine.host.actor(accountId) !== undefined);
}

async function waitForPassivation(accountId: string): Promise<void> {
  await waitUntil(async () => owners(accountId).length === 0 && (await O().leases.holder(accountId)) === null, 5_000, `${accountId} to be passivated`);
}

async function expectExactMirror(accountId: string): Promise<void> {
  expect(await readMirror(h.dataDir, accountId)).toEqual(expectedMirror(h.emulator, accountId));
  const posts = [...expectedMirror(h.emulator, accountId).keys()].filter((path) => path.endsWith('.md'));
  const entries = Object.values(await h.redis.hgetall(accountKeys(accountId).entries)).map((raw) => JSON.parse(raw) as { id: string });
  expect(entries).toHaveLength(posts.length);
  expect(new Set(entries.map((e) => e.id)).size).toBe(posts.length);
  expect(h.emulator.stats.maxListingsInFlight(accountId)).toBeLessThanOrEqual(1);
}

const runsOf = async (accountId: string) => {
  const stored = await O().persistence.load(accountId);
  return { version: stored?.version ?? 0, runs: (stored?.snapshot as { context: { runs: number } }).context.runs };
};

describe('passivation', () => {
  it('drops an idle actor and its lease, and the next webhook restores it from Redis', async () => {
    const acc = 'dbid:passivate-basic';
    expect((await h.linkAccount(acc)).status).toBe(200);
    for (let n = 0; n < 3; n++) h.emulator.model.writeFile(acc, `/posts/${n}.md`, `# ${n}\n\nbody ${n}`);
    expect((await webhook(h.url, acc)).status).toBe(200);
    await waitUntil(() => settled(acc, '/posts/2.md'), 10_000, 'the first sync');

    await waitForPassivation(acc);
    expect(O().host.actor(acc)).toBeUndefined();
    expect(await O().leases.holder(acc)).toBeNull();
    const before = await runsOf(acc);
    expect(before.runs).toBeGreaterThanOrEqual(1);

    h.emulator.model.writeFile(acc, '/posts/late.md', '# Late\n\nafter passivation');
    expect((await webhook(h.url, acc)).status).toBe(200);
    await waitUntil(() => settled(acc, '/posts/late.md'), 10_000, 'the rehydrated actor to sync');
    const after = await runsOf(acc);
    // Restored, not recreated: a fresh actor would count its runs from 0 again and restart the
    // snapshot versions (which the version compare-and-set would then refuse).
    expect(after.runs).toBe(before.runs + 1);
    expect(after.version).toBeGreaterThan(before.version);
    await expectExactMirror(acc);

    await waitForPassivation(acc);
  });

  it('never loses a webhook sent to the other process around the moment the owner passivates', async () => {
    const acc = 'dbid:passivate-race';
    const k = accountKeys(acc);
    expect((await h.linkAccount(acc)).status).toBe(200);
    await waitUntil(() => settled(acc), 10_000, 'the first sync');
    // Around the passivation deadline (idle transition + IDLE_MS): well before it (the owner's
    // actor is woken over mr:wake), right at it, and after it (the other process takes over).
    const offsets = [-120, -60, -15, -6, -3, -1, 0, 0, 1, 2, 3, 5, 8, 15, 60];
    const handled = { byOwner: 0, byOther: 0 };
    for (const [round, offset] of offsets.entries()) {
      // An idle owner still in memory, early enough for this offset; a slow poll (a loaded
      // machine) may miss the window, then one more run gives a new one.
      let owner: Engine | undefined;
      let due = 0;
      for (let attempt = 0; ; attempt++) {
        await waitSettled(acc, undefined, `round ${round}: the previous run to end`, 5_000);
        [owner] = owners(acc);
        due = Number(await h.redis.hget(k.mailbox, 'actorUpdatedAt')) + IDLE_MS; // the idle snapshot's time + the idle timeout
        if (owner && Date.now() < due + offset - 2) break;
        if (attempt === 5) throw new Error(`round ${round}: never caught an idle owner before its passivation`);
        const prime = `/posts/prime-${round}-${attempt}.md`;
        h.emulator.model.writeFile(acc, prime, '# Prime');
        expect((await webhook(h.url, acc)).status).toBe(200);
        await waitSettled(acc, prime, `round ${round}: a priming run`, 5_000);
      }
      const other = owner === O() ? x : { url: h.url };
      const file = `/posts/round-${round}.md`;
      h.emulator.model.writeFile(acc, file, `# Round ${round}\n\noffset ${offset}`);
      const fence = await h.redis.hget(k.fence, 'fence');
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due + offset - Date.now())));
      expect((await webhook(other.url, acc)).status).toBe(200);
      // No reaper runs in this harness: a lost wake leaves status=running and no owner for good.
      await waitSettled(acc, file, `round ${round} (offset ${offset} ms): the webhook's file to be synced and the account idle`, 5_000);
      if ((await h.redis.hget(k.fence, 'fence')) === fence) handled.byOwner++;
      else handled.byOther++;
    }
    await expectExactMirror(acc);
    // Both sides of the race were hit: the owner woken over mr:wake, and a takeover after release.
    expect(handled.byOwner).toBeGreaterThan(0);
    expect(handled.byOther).toBeGreaterThan(0);
  });

  it('catches a wake that reached the owner after it forgot its actor but before it released the lease', async () => {
    const acc = 'dbid:passivate-late-wake';
    expect((await h.linkAccount(acc)).status).toBe(200);
    await waitUntil(async () => (await settled(acc)) && owners(acc)[0] === O(), 10_000, 'the first sync, owned by O');

    // Hold O's lease release until the webhook at X has been recorded and X, unable to take the
    // lease, has published its wake, which O (its actor already gone) cannot deliver.
    const original = O().leases.release.bind(O().leases);
    let interleaved = false;
    O().leases.release = async (lease: Lease) => {
      if (lease.accountId === acc && !interleaved) {
        interleaved = true;
        expect(O().host.actor(acc)).toBeUndefined();
        const seen = wakes.length;
        h.emulator.model.writeFile(acc, '/posts/late-wake.md', '# Late wake');
        expect((await webhook(x.url, acc)).status).toBe(200);
        await waitUntil(() => wakes.slice(seen).some((raw) => raw.includes(acc)), 5_000, 'X to publish the wake');
        expect(x.engine.host.actor(acc)).toBeUndefined();
      }
      return original(lease);
    };
    try {
      await waitSettled(acc, '/posts/late-wake.md', 'the late wake to be caught and synced');
    } finally {
      O().leases.release = original;
    }
    expect(interleaved).toBe(true);
    await expectExactMirror(acc);
  });

  it('catches a webhook at the other process between the lease release and the mailbox check', async () => {
    const acc = 'dbid:passivate-after-release';
    expect((await h.linkAccount(acc)).status).toBe(200);
    await waitUntil(async () => (await settled(acc)) && owners(acc)[0] === O(), 10_000, 'the first sync, owned by O');
    const original = O().leases.release.bind(O().leases);
    let interleaved = false;
    O().leases.release = async (lease: Lease) => {
      const released = await original(lease);
      if (lease.accountId === acc && !interleaved) {
        interleaved = true;
        h.emulator.model.writeFile(acc, '/posts/after-release.md', '# After release');
        expect((await webhook(x.url, acc)).status).toBe(200);
      }
      return released;
    };
    try {
      await waitSettled(acc, '/posts/after-release.md', 'the webhook to be synced');
    } finally {
      O().leases.release = original;
    }
    expect(interleaved).toBe(true);
    await expectExactMirror(acc);
  });

  // Pins two fixed bugs: a start overlapping a stop got the same lease back and the stop then
  // released it; and a snapshot pushed while the writer's drain was settling was never written,
  // leaving a `finishing` snapshot behind a passivated idle actor.
  it('does not strand a webhook that reaches the owner itself while its passivation waits on a slow snapshot write', async () => {
    const acc = 'dbid:passivate-self';
    expect((await h.linkAccount(acc)).status).toBe(200);
    for (let n = 0; n < 8; n++) h.emulator.model.writeFile(acc, `/posts/${n}.md`, `# ${n}`);
    expect((await webhook(h.url, acc)).status).toBe(200);
    await waitSettled(acc, '/posts/7.md', 'the first sync');
    await waitForPassivation(acc); // start from a clean slate: nobody in memory, no lease

    // One more run, whose final (idle) snapshot write is slow, as when it failed once and waits
    // for its retry: the passivation timer fires while that write is pending, so stop() waits for
    // it with the actor already forgotten but the lease not yet released. Meanwhile a webhook
    // reaches O itself: O starts a new actor, which gets its own, still held, lease back (same
    // token) and runs; only then does the slow write land and the passivation carry on.
    const persistence = O().persistence;
    const save = persistence.save.bind(persistence);
    let interleaved = false;
    persistence.save = async (accountId, version, snapshot, state, now) => {
      if (accountId === acc && state === 'idle' && !interleaved) {
        interleaved = true;
        await waitUntil(() => O().host.actor(acc) === undefined, 5_000, 'the passivation to start');
        h.emulator.faults.setLatency(150, 'files/download');
        for (let n = 0; n < 8; n++) h.emulator.model.writeFile(acc, `/posts/${n}.md`, `# ${n} again`);
        expect((await webhook(h.url, acc)).status).toBe(200);
        // (A fixed engine may make this webhook wait for the passivation to finish: then no new
        // actor shows up here, and the run simply starts after the stop.)
        await waitUntil(() => O().host.actor(acc)?.getSnapshot().value === 'downloading', 1_000, 'a new actor of O').catch(() => undefined);
        h.emulator.faults.setLatency(0, 'files/download');
      }
      return save(accountId, version, snapshot, state, now);
    };
    try {
      h.emulator.model.writeFile(acc, '/posts/trigger.md', '# Trigger');
      expect((await webhook(h.url, acc)).status).toBe(200);
      await waitUntil(() => interleaved, 10_000, "the trigger run's idle snapshot write");
      // No reaper runs in this harness: a run left with status=running and no owner stays stuck.
      await waitSettled(acc, '/posts/trigger.md', "the webhook's run to finish", 10_000, async () => (await readMirror(h.dataDir, acc)).get('/posts/7.md')?.content === '# 7 again');
    } finally {
      persistence.save = save;
      h.emulator.faults.setLatency(0, 'files/download');
    }
    await expectExactMirror(acc);
  });
});
