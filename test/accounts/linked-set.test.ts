import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStore } from '../../src/accounts/account-store.js';
import { openRedis } from '../../src/redis/connection.js';
import { LINKED_ACCOUNTS_KEY } from '../../src/redis/keys.js';
import type { RedisClient } from '../../src/redis/scripts.js';
import { startTestRedisClient, type TestRedis } from '../support/redis-server.js';
import { CommandLog, countOf } from '../support/redis-monitor.js';

/**
 * The set of linked accounts is how the sweep's reaper and poll, and a boot, find accounts: one
 * linked but missing from it is never resumed after a crash nor polled again. It cannot be updated
 * in the account's own scripts (it is no key of the account's hash slot), so link and unlink keep
 * it in separate commands, and two processes can interleave them.
 */
let redis: Redis;
let server: TestRedis;
let stopRedis: () => Promise<void>;
beforeAll(async () => {
  ({ redis, server, stop: stopRedis } = await startTestRedisClient());
});
afterAll(() => stopRedis());

/** A real connection of another process whose SREM is held until `release()` (as a slow network would). */
async function connectionHoldingSrem(): Promise<{ client: RedisClient; sremSent: Promise<void>; release: () => void; close: () => void }> {
  const client = await openRedis(server.url);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let reached!: () => void;
  const sremSent = new Promise<void>((resolve) => (reached = resolve));
  const holding = new Proxy(client, {
    get(target, property) {
      if (property === 'srem') {
        return async (...args: Parameters<Redis['srem']>) => {
          reached();
          await released;
          return target.srem(...args);
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { client: holding as RedisClient, sremSent, release, close: () => client.disconnect() };
}

describe('the set of linked accounts', () => {
  it('keeps an account re-linked while another process unlinked it', async () => {
    const account = 'dbid:relinked-during-unlink';
    const linker = new AccountStore(redis);
    await linker.link(account, { accessToken: 'old-token' }, [], 1);
    const other = await connectionHoldingSrem();
    try {
      // The unlink's script has run; its SREM is still on its way when the re-link lands whole.
      const unlinking = new AccountStore(other.client).unlink(account);
      await other.sremSent;
      await linker.link(account, { accessToken: 'new-token' }, [], 2);
      other.release();
      expect(await unlinking).toBe(true);
    } finally {
      other.close();
    }
    expect(await linker.get(account)).not.toBeNull();
    expect(await linker.linkedIds()).toContain(account);
  });

  it('drops an account unlinked for good', async () => {
    const account = 'dbid:unlinked';
    const store = new AccountStore(redis);
    await store.link(account, { accessToken: 'token' }, [], 1);
    expect(await store.unlink(account)).toBe(true);
    expect(await store.get(account)).toBeNull();
    expect(await store.linkedIds()).not.toContain(account);
  });

  it('reads every linked id a page at a time, never the whole set in one command: each once, sorted, none that is no account id', async () => {
    const before = await redis.smembers(LINKED_ACCOUNTS_KEY);
    // 2,500 members: a set large enough for SSCAN to walk it in several pages, as a real install's is.
    const ids = Array.from({ length: 2_500 }, (_, n) => `dbid:walk-${String(n).padStart(5, '0')}`);
    await redis.sadd(LINKED_ACCOUNTS_KEY, ...ids, 'not an id!');
    // SSCAN gives a member twice when the set shrinks during the walk (a rehash): this connection
    // answers its second page with the members of the first one again, as such a walk would.
    let pagesAnswered = 0;
    let firstPage: string[] = [];
    const replaying = new Proxy(redis, {
      get(target, property) {
        if (property === 'sscan') {
          return async (...args: Parameters<Redis['sscan']>) => {
            const [next, members] = await target.sscan(...args);
            pagesAnswered++;
            if (pagesAnswered === 1) firstPage = members;
            return [next, pagesAnswered === 2 ? [...members, ...firstPage] : members];
          };
        }
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const store = new AccountStore(replaying as RedisClient);
    const log = await CommandLog.start(redis);
    let read: string[] = [];
    try {
      const sent = await log.during(redis, async () => { read = await store.linkedIds(); });
      expect(countOf(sent, 'smembers', LINKED_ACCOUNTS_KEY)).toBe(0);
      expect(countOf(sent, 'sscan', LINKED_ACCOUNTS_KEY)).toBeGreaterThan(1);
    } finally {
      log.stop();
      await redis.srem(LINKED_ACCOUNTS_KEY, ...ids, 'not an id!');
    }
    expect(firstPage.length).toBeGreaterThan(0);
    expect(read).toEqual([...before, ...ids].sort());
  });
});
