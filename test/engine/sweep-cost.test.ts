import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import { silentLogger } from '../../src/logger.js';
import { accountKeys, LINKED_ACCOUNTS_KEY, SWEEP_TURN_KEY } from '../../src/redis/keys.js';
import { CommandLog, countOf } from '../support/redis-monitor.js';
import { startTestRedisClient } from '../support/redis-server.js';
import { writeIdleAccounts } from '../support/idle-accounts.js';

/**
 * The sweep (the reaper and the poll) runs every SWEEP_INTERVAL_MS in every process over every
 * linked account (in one process per interval), most of them idle and passivated: what it sends per account is multiplied by
 * 100,000 accounts in production, every 10 s (and boot's, at every start). These tests pin what
 * they send, not how long they take.
 */
const ACCOUNTS = 1_200;
const idOf = (i: number) => `dbid:sweep-${String(i).padStart(5, '0')}`;
/** Running, its lease held by another (live) process: the sweep must reach it, read its lease and leave it. */
const OWNED = idOf(ACCOUNTS - 1);

let redis: Redis;
let stopRedis: () => Promise<void>;
let engine: Engine;
let dataDir: string;

beforeAll(async () => {
  ({ redis, stop: stopRedis } = await startTestRedisClient());
  await writeIdleAccounts(redis, Array.from({ length: ACCOUNTS }, (_, i) => idOf(i)), (accountId): Record<string, string> => (accountId === OWNED ? { status: 'running' } : {}));
  await redis.set(accountKeys(OWNED).lease, 'another-process|8', 'PX', 60_000);
  dataDir = mkdtempSync(join(tmpdir(), 'mailroom-sweep-'));
  engine = new Engine({ redis, dataDir, dropbox: { hosts: { api: 'http://127.0.0.1:9', content: 'http://127.0.0.1:9' }, callTimeoutMs: 1_000 }, log: silentLogger, pollIntervalMs: 15 * 60_000 });
});

afterAll(async () => {
  await engine?.close();
  await stopRedis();
  rmSync(dataDir, { recursive: true, force: true });
});

async function sweepCommands(): Promise<string[][]> {
  const log = await CommandLog.start(redis);
  try {
    let result: Awaited<ReturnType<Engine['sweep']>> | undefined;
    const sent = await log.during(redis, async () => {
      result = await engine.sweep();
    });
    expect(result).toEqual({ reaped: 0, polled: 0, rechecked: 0 });
    return sent;
  } finally {
    log.stop();
  }
}

describe('the sweep over many idle accounts', () => {
  it('reads the mailbox fields it decides on, never a whole mailbox', async () => {
    const sent = await sweepCommands();
    // The mailbox also holds the idle actor, the fence and the link's fields: HGETALL moved 328 B
    // per account (with the fence's first, small tokens) where these fields are about 100 (32.8 MB
    // per sweep at 100,000 accounts).
    expect(sent.filter((args) => args[0]!.toLowerCase() === 'hgetall')).toHaveLength(0);
    expect(sent.filter((args) => args[0]!.toLowerCase() === 'hmget')).toHaveLength(ACCOUNTS);
    // It got to the last account, whose run is another process's: its lease read, nothing more.
    expect(countOf(sent, 'get', accountKeys(OWNED).lease)).toBe(1);
  });

  it('walks the set of linked accounts a page at a time, never in one command', async () => {
    const sent = await sweepCommands();
    // SMEMBERS of 100,000 ids blocked Redis for about 90 ms on every sweep of every process.
    expect(sent.filter((args) => args[0]!.toLowerCase() === 'smembers')).toHaveLength(0);
    const scans = sent.filter((args) => args[0]!.toLowerCase() === 'sscan' && args[1] === LINKED_ACCOUNTS_KEY);
    expect(scans.length).toBeGreaterThan(1);
    // And still every account: the last one's lease read.
    expect(countOf(sent, 'get', accountKeys(OWNED).lease)).toBe(1);
    expect(sent.filter((args) => args[0]!.toLowerCase() === 'hmget').length).toBeGreaterThanOrEqual(ACCOUNTS);
  });

  it('a scheduled sweep keeps its turn page by page, so a sweep longer than the turn is not joined by another', async () => {
    await redis.del(SWEEP_TURN_KEY);
    const log = await CommandLog.start(redis);
    try {
      const sent = await log.during(redis, async () => {
        expect(await engine.scheduledSweep(60_000)).toEqual({ reaped: 0, polled: 0, rechecked: 0 });
      });
      const pages = sent.filter((args) => args[0]!.toLowerCase() === 'sscan').length;
      expect(pages).toBeGreaterThan(1);
      expect(countOf(sent, 'pexpire', SWEEP_TURN_KEY)).toBeGreaterThanOrEqual(pages - 1);
    } finally {
      log.stop();
      await redis.del(SWEEP_TURN_KEY);
    }
  });

  it('boot asks each idle account three small questions: no transaction, no snapshot read', async () => {
    const log = await CommandLog.start(redis);
    try {
      const sent = await log.during(redis, async () => {
        await engine.host.boot();
      });
      const named = (command: string) => sent.filter((args) => args[0]!.toLowerCase() === command);
      // Whether it has work (the mailbox), whether a run was cut short (the stored state's name)
      // and whether downloads wait (the queue's length): a whole actor was read in a transaction
      // for every account, 6 commands each (26 s of boot at 100,000 idle accounts).
      expect(named('multi')).toHaveLength(0);
      expect(named('hgetall')).toHaveLength(0);
      expect(named('hget').filter((args) => args[2] === 'state')).toHaveLength(ACCOUNTS);
      expect(named('hlen')).toHaveLength(ACCOUNTS);
    } finally {
      log.stop();
    }
  });
});
