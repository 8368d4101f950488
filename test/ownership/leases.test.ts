import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntryStore } from '../../src/entries/entry-store.js';
import { Leases } from '../../src/ownership/leases.js';
import { accountKeys } from '../../src/redis/keys.js';
import { isFencedError } from '../../src/redis/scripts.js';
import { SyncStore } from '../../src/sync/sync-store.js';
import { startTestRedisClient } from '../support/redis-server.js';
import { waitUntil } from '../support/sync-harness.js';

let redis: Redis;
let stopRedis: () => Promise<void>;
beforeAll(async () => {
  ({ redis, stop: stopRedis } = await startTestRedisClient());
});
afterAll(() => stopRedis());

describe('leases and fencing tokens', () => {
  it('grants one owner at a time, with a new token on every grant', async () => {
    const a = new Leases(redis, 'proc-a', 10_000);
    const b = new Leases(redis, 'proc-b', 10_000);
    const leaseA = await a.acquire('dbid:one');
    expect(Number(leaseA?.token)).toBeGreaterThan(0);
    expect(await b.acquire('dbid:one')).toBeNull();
    expect((await a.release(leaseA!)).released).toBe(true);
    const leaseB = await b.acquire('dbid:one');
    expect(Number(leaseB?.token)).toBeGreaterThan(Number(leaseA!.token));
    expect(await a.renew(leaseA!)).toBe(false); // A lost it: its actor must stop
  });

  it('grants a new token when the process takes its own lease again: the stopped actor\'s step is fenced out', async () => {
    // An actor stopped by the watchdog or after a refused write, whose lease release failed (Redis
    // timed out): its step may still be running when the next actor of the account starts here.
    // With the same token, that step's late writes would pass as the new actor's.
    const account = 'dbid:own-again';
    const a = new Leases(redis, 'proc-a', 10_000);
    const stopped = (await a.acquire(account))!;
    const next = (await a.acquire(account))!;
    expect(Number(next.token)).toBeGreaterThan(Number(stopped.token));
    expect(await a.holder(account)).toBe(next.value);
    await expect(new SyncStore(redis, () => String(stopped.token)).beginListing(account)).rejects.toSatisfy(isFencedError);
    await new SyncStore(redis, () => String(next.token)).beginListing(account);
    expect(await a.renew(stopped)).toBe(false);
    expect(await a.renew(next)).toBe(true);
  });

  it('hands over, with the grant, the stored actor and the link; and says on release whether the mailbox has work', async () => {
    const a = new Leases(redis, 'proc-a', 10_000);
    const k = accountKeys('dbid:handover');
    await redis.hset(k.mailbox, 'status', 'idle', 'dirty', '0', 'actorVersion', '7', 'actorUpdatedAt', '1700000000000', 'runs', '3', 'lastSyncedAt', '1700000000000');
    // Sealed credentials are bytes, most of them not valid UTF-8: they must come back intact.
    const sealed = Buffer.concat([Buffer.of(0x01), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
    await redis.set(k.credentials, sealed);
    await redis.hset(k.mailbox, 'ignore', '["/drafts/**"]', 'linkedAt', '1700000000000');
    const lease = (await a.acquire('dbid:handover'))!;
    expect(lease.stored).toEqual({ actor: {}, mailbox: ['7', '1700000000000', '3', '1700000000000'] });
    // The first step's session needs no read of its own.
    expect(lease.link).toEqual({ credentials: sealed, ignore: '["/drafts/**"]', linkedAt: '1700000000000' });
    expect(lease.link!.credentials.equals(sealed)).toBe(true);
    expect(await a.release(lease)).toEqual({ released: true, workWaiting: false });

    const again = (await a.acquire('dbid:handover'))!;
    await redis.hset(k.mailbox, 'dirty', '1'); // a webhook while the owner lets go
    expect(await a.release(again)).toEqual({ released: true, workWaiting: true });
    expect(await a.release(again)).toEqual({ released: false, workWaiting: true });
  });

  it('hands the account to another process once the lease expires', async () => {
    const a = new Leases(redis, 'proc-a', 100);
    const b = new Leases(redis, 'proc-b', 10_000);
    const first = (await a.acquire('dbid:two'))!;
    let taken: Awaited<ReturnType<Leases['acquire']>> = null;
    await waitUntil(async () => (taken = await b.acquire('dbid:two')) !== null, 5_000, 'the lease to expire');
    expect(Number(taken!.token)).toBeGreaterThan(Number(first.token));
    expect(await b.holder('dbid:two')).toBe(`proc-b|${taken!.token}`);
  });

  it("refuses every write of a paused owner once another process took over, and changes nothing", async () => {
    const account = 'dbid:zombie';
    const a = new Leases(redis, 'proc-a', 100);
    const b = new Leases(redis, 'proc-b', 10_000);
    const zombie = (await a.acquire(account))!;
    let owner: Awaited<ReturnType<Leases['acquire']>> = null;
    await waitUntil(async () => (owner = await b.acquire(account)) !== null, 5_000, 'the takeover');
    const zombieStore = new SyncStore(redis, () => String(zombie.token));
    const zombieEntries = new EntryStore(redis, { fenceOf: () => String(zombie.token) });
    const listingState = async () => {
      const k = accountKeys(account);
      return { mailbox: await redis.hgetall(k.mailbox), pageCursor: await redis.get(k.pageCursor), cursor: await redis.get(k.cursor), changes: await redis.lrange(k.changes, 0, -1) };
    };
    const before = await listingState();

    await expect(zombieStore.beginListing(account)).rejects.toSatisfy(isFencedError);
    await expect(zombieStore.savePage(account, '', 'c9', [])).rejects.toSatisfy(isFencedError);
    await expect(zombieEntries.set(account, { pathLower: '/a.md', path: '/a.md', title: 'a', html: '', updated: 1 })).rejects.toSatisfy(isFencedError);
    expect(await listingState()).toEqual(before);
    expect(await redis.hlen(accountKeys(account).entryIds)).toBe(0);

    const ownerStore = new SyncStore(redis, () => String(owner!.token));
    expect(await ownerStore.beginListing(account)).toMatchObject({ mode: 'full', from: '' });
  });

  it('never grants a token again that Redis lost with its write: the process that got it is fenced out, not joined', async () => {
    // A failover to a replica the grant had not reached (or a restore from an older backup): the
    // grant, its lease and its fence are gone, but the process it answered runs the actor.
    const account = 'dbid:grant-lost';
    const k = accountKeys(account);
    const a = new Leases(redis, 'proc-a', 10_000);
    const b = new Leases(redis, 'proc-b', 10_000);
    const before = await redis.hget(k.mailbox, 'fence');
    const lost = (await a.acquire(account))!;
    await redis.multi().del(k.lease).hset(k.mailbox, 'fence', before ?? '0').exec();
    // Seconds pass in a real failover; here, until Redis's clock has moved past the lost grant's
    // microsecond.
    await waitUntil(async () => {
      const [seconds, micros] = await redis.time();
      return Number(seconds) * 1_000_000 + Number(micros) > Number(lost.token);
    }, 5_000, "Redis's clock to pass the lost grant");
    const owner = (await b.acquire(account))!;
    expect(Number(owner.token)).toBeGreaterThan(Number(lost.token));
    await expect(new SyncStore(redis, () => String(lost.token)).beginListing(account)).rejects.toSatisfy(isFencedError);
    await new SyncStore(redis, () => String(owner.token)).beginListing(account);
  });

  it('a process without a lease can write nothing', async () => {
    const store = new SyncStore(redis, () => 'none');
    await expect(store.beginListing('dbid:never-leased')).rejects.toSatisfy(isFencedError);
  });
});
