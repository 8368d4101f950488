import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mailbox, parkedRecheckDue } from '../../src/mailbox/mailbox.js';
import { openRedis } from '../../src/redis/connection.js';
import { accountKeys } from '../../src/redis/keys.js';
import { runScript, runScriptForBytes, scriptNameOfSha } from '../../src/redis/scripts.js';
import { CommandLog } from '../support/redis-monitor.js';
import { TestRedis } from '../support/redis-server.js';
import { waitUntil } from '../support/fixtures.js';

let server: TestRedis;
let redis: Redis;
beforeAll(async () => {
  server = await TestRedis.start();
  redis = await openRedis(server.url);
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
});

const scriptCommands = (sent: string[][]) => sent.map((args) => args[0]!.toLowerCase()).filter((name) => name === 'evalsha' || name === 'eval');

describe('running the Lua scripts', () => {
  it('sends EVALSHA, and EVAL once when the server does not have the script (new, restarted or flushed)', async () => {
    const mailbox = new Mailbox(redis);
    const account = 'dbid:scripts-cache';
    await redis.set(accountKeys(account).credentials, '{}');
    await redis.script('FLUSH');
    const log = await CommandLog.start(redis);
    try {
      expect(scriptCommands(await log.during(redis, async () => void (await mailbox.markDirty(account))))).toEqual(['evalsha', 'eval']);
      expect(scriptCommands(await log.during(redis, async () => void (await mailbox.markDirty(account))))).toEqual(['evalsha']);
      // What a restarted redis-server (no persistence of scripts) or SCRIPT FLUSH leaves.
      await redis.script('FLUSH');
      let outcome: string | undefined;
      const afterFlush = await log.during(redis, async () => void (outcome = await mailbox.markDirty(account)));
      expect(scriptCommands(afterFlush)).toEqual(['evalsha', 'eval']);
      expect(outcome).toBe('running'); // the first call set status running
      expect(await redis.hget(accountKeys(account).mailbox, 'webhooks')).toBe('3'); // each call ran the script once
      // EVAL cached it again.
      expect(scriptCommands(await log.during(redis, async () => void (await mailbox.markDirty(account))))).toEqual(['evalsha']);
    } finally {
      log.stop();
    }
  });

  it('is one EVALSHA from the first call on, and again after the server restarts with an empty cache', async () => {
    await redis.script('FLUSH');
    // openRedis loads every script when it connects...
    const fresh = await openRedis(server.url);
    const log = await CommandLog.start(fresh);
    try {
      const firstCall = await log.during(fresh, async () => void (await new Mailbox(fresh).markDirty('dbid:scripts-fresh')));
      expect(scriptCommands(firstCall)).toEqual(['evalsha']);
      // ...and again when it reconnects to a restarted server (scripts are not persisted).
      log.stop();
      await server.restart();
      const sha = firstCall[0]![1]!;
      await waitUntil(async () => redis.status === 'ready' && fresh.status === 'ready' && ((await fresh.script('EXISTS', sha)) as number[])[0] === 1, 10_000, 'the scripts loaded after the restart');
      const again = await CommandLog.start(fresh);
      try {
        expect(scriptCommands(await again.during(fresh, async () => void (await new Mailbox(fresh).markDirty('dbid:scripts-fresh'))))).toEqual(['evalsha']);
      } finally {
        again.stop();
      }
    } finally {
      log.stop();
      fresh.disconnect();
    }
  });

  it('names the script behind a SHA, for tools that watch EVALSHA', async () => {
    const log = await CommandLog.start(redis);
    try {
      const sent = await log.during(redis, async () => void (await new Mailbox(redis).markDirty('dbid:scripts-name')));
      expect(scriptNameOfSha(sent.find((args) => args[0]!.toLowerCase() === 'evalsha')![1]!)).toBe('mailboxMarkDirty');
      expect(scriptNameOfSha('0'.repeat(40))).toBeUndefined();
    } finally {
      log.stop();
    }
  });

  it('hands back bytes that are not UTF-8 intact when asked for bytes, through EVALSHA and through EVAL', async () => {
    const account = 'dbid:scripts-bytes';
    const sealed = Buffer.concat([Buffer.of(0x01), Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i))]);
    await redis.set(accountKeys(account).credentials, sealed);
    await redis.hset(accountKeys(account).mailbox, 'linkedAt', '1');
    const read = () => runScriptForBytes<(Buffer | null)[]>(redis, 'accountRead', [accountKeys(account).credentials, accountKeys(account).mailbox]);
    await redis.script('FLUSH');
    const log = await CommandLog.start(redis);
    try {
      let first: (Buffer | null)[] = [];
      let second: (Buffer | null)[] = [];
      expect(scriptCommands(await log.during(redis, async () => void (first = await read())))).toEqual(['evalsha', 'eval']);
      expect(scriptCommands(await log.during(redis, async () => void (second = await read())))).toEqual(['evalsha']);
      for (const reply of [first, second]) {
        expect(reply[0]!.equals(sealed)).toBe(true);
        expect(reply[1]).toBeNull();
        expect(reply[2]!.toString()).toBe('1');
      }
    } finally {
      log.stop();
    }
  });

  it('refuses an unknown script or a wrong number of keys before sending anything', () => {
    expect(() => runScript(redis, 'noSuchScript', [])).toThrow('no Lua script named noSuchScript');
    expect(() => runScript(redis, 'mailboxMarkDirty', ['only-one-key'])).toThrow('Lua script mailboxMarkDirty takes 2 keys, was given 1');
  });

  it('does not retry a script that failed for another reason', async () => {
    // A fenced script run with a stale token fails with FENCED: that error is the caller's.
    const k = accountKeys('dbid:scripts-fenced');
    await redis.hset(k.fence, 'fence', '7');
    const finish = () => runScript(redis, 'runFinish', [k.fence, k.mailbox, k.queue, k.changes], ['6']).catch((error: unknown) => error);
    await finish(); // the server has the script from now on
    const log = await CommandLog.start(redis);
    try {
      let failure: unknown;
      const sent = await log.during(redis, async () => {
        failure = await finish();
      });
      expect((failure as Error).message).toMatch(/^FENCED/);
      expect(scriptCommands(sent)).toEqual(['evalsha']);
    } finally {
      log.stop();
    }
  });
});

describe('changes-commit.lua and the set-aside files', () => {
  it('takes out those a listing names again, or whose folder it deletes or replaces with a file, and no other', async () => {
    const account = 'dbid:scripts-set-aside';
    const k = accountKeys(account);
    const pageCursor = 'cursor-of-the-page';
    const aside = ['/named.md', '/deleted/x.md', '/replaced/x.md', '/listed-folder/x.md', '/elsewhere/x.md', '/deletedness.md'];
    await redis.hset(k.setAside, Object.fromEntries(aside.map((path) => [path, '{}'])));
    await redis.set(k.pageCursor, pageCursor);
    const entries = [
      { tag: 'file', pathLower: '/named.md' },
      { tag: 'deleted', pathLower: '/deleted' },
      { tag: 'file', pathLower: '/replaced' },
      { tag: 'folder', pathLower: '/listed-folder' },
    ];
    await redis.rpush(k.changes, ...entries.map((entry) => JSON.stringify(entry)));
    const pageId = createHash('sha1').update(pageCursor).digest('hex');
    const ops = JSON.stringify({ queue: { set: [], del: [] }, files: { set: [], del: [] }, fileIds: { set: [], del: [] }, ignored: { set: [], del: [] } });
    const reply = await runScript<[number]>(redis, 'changesCommit', [k.fence, k.mailbox, k.pageCursor, k.cursor, k.changes, k.queue, k.files, k.fileIds, k.ignored, k.setAside, k.applyRules], ['', pageId, entries.length, ops, '[]', 256]);
    expect(reply[0]).toBe(1);
    expect((await redis.hkeys(k.setAside)).sort()).toEqual(['/deletedness.md', '/elsewhere/x.md', '/listed-folder/x.md']);
  });
});

describe("a parked account's re-check (parked-recheck.lua)", () => {
  const HOUR = 3_600_000;
  const DAY = 24 * HOUR;

  // The sweep asks parkedRecheckDue before it runs the script: both must say the same.
  it.each([
    { rechecks: 0, agoMs: HOUR - 1, due: false },
    { rechecks: 0, agoMs: HOUR, due: true },
    { rechecks: 1, agoMs: 2 * HOUR - 1, due: false },
    { rechecks: 1, agoMs: 2 * HOUR, due: true },
    { rechecks: 3, agoMs: 8 * HOUR, due: true },
    { rechecks: 5, agoMs: DAY - 1, due: false }, // 32 h, held to the day
    { rechecks: 40, agoMs: DAY, due: true },
  ])('after $rechecks re-checks, a try $agoMs ms ago is due: $due, in the script as in the sweep', async ({ rechecks, agoMs, due }) => {
    const account = `dbid:recheck-${rechecks}-${agoMs}`;
    const k = accountKeys(account);
    const now = 1_800_000_000_000;
    await redis.hset(k.mailbox, 'status', 'parked', 'listedAt', String(now - agoMs), 'rechecks', String(rechecks));
    expect(parkedRecheckDue(await new Mailbox(redis).read(account), now, HOUR, DAY)).toBe(due);
    expect(await new Mailbox(redis).takeParkedRecheck(account, now, HOUR, DAY)).toBe(due);
    const after = await redis.hgetall(k.mailbox);
    if (due) expect(after).toMatchObject({ status: 'running', listedAt: String(now), rechecks: String(rechecks + 1) });
    else expect(after).toMatchObject({ status: 'parked', listedAt: String(now - agoMs), rechecks: String(rechecks) });
  });

  it('takes only a parked account, and each due re-check once', async () => {
    const account = 'dbid:recheck-once';
    const k = accountKeys(account);
    await redis.hset(k.mailbox, 'status', 'idle', 'listedAt', '0');
    expect(await new Mailbox(redis).takeParkedRecheck(account, 10 * HOUR, HOUR, DAY)).toBe(false);
    await redis.hset(k.mailbox, 'status', 'parked');
    const [first, second] = await Promise.all([new Mailbox(redis).takeParkedRecheck(account, 10 * HOUR, HOUR, DAY), new Mailbox(redis).takeParkedRecheck(account, 10 * HOUR, HOUR, DAY)]);
    expect([first, second].sort()).toEqual([false, true]);
  });
});
