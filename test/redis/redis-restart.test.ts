import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { Engine } from '../../src/engine/engine.js';
import { APP_SECRET, expectedMirror, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * Redis goes away in the middle of a sync. (a) SIGKILL + immediate restart (the append-only file,
 * fsynced on every write, keeps everything acknowledged): the client reconnects by itself and the
 * account converges. (b) Redis stays down for several command timeouts: the actor parks in
 * `backoff` with a `redis` error (not hung in a step, nothing crashes), and once Redis is back the
 * backoff deadline passes and the sync finishes. (c) Redis freezes (SIGSTOP: the socket stays open,
 * nothing answers): every command hits its deadline; after SIGCONT the server executes the commands
 * that timed out (the replay hazard) and the account must still converge.
 *
 * Every wait polls with a deadline, so an engine that hangs fails the test instead of stalling it.
 */

const post = (n: number, version = 1) => `# Post ${n} v${version}\n\nBody of post ${n}, version ${version}.\n`;
const name = (n: number) => `/posts/${String(n).padStart(3, '0')}.md`;
const POSTS = 120;

function seed(emulator: RunningEmulator, accountId: string, posts = POSTS): void {
  emulator.model.addAccount(accountId, { accessToken: `token-${accountId}` });
  for (let n = 0; n < posts; n++) emulator.model.writeFile(accountId, name(n), post(n));
}

/** Exact mirror, one entry per post with distinct ids, idle with no error. */
async function expectConverged(engine: Engine, emulator: RunningEmulator, dataDir: string, accountId: string): Promise<void> {
  expect(await readMirror(dataDir, accountId)).toEqual(expectedMirror(emulator, accountId));
  const entries = await engine.entries.list(accountId);
  const posts = emulator.model.listTree(accountId).filter((i) => i.kind === 'file' && i.pathLower.endsWith('.md'));
  expect(entries.map((e) => e.path).sort()).toEqual(posts.map((p) => p.pathDisplay).sort());
  expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
  const status = await engine.status(accountId);
  expect(status).toMatchObject({ state: 'idle', dirty: false, pending: 0, lastError: null });
}

describe('(a) Redis SIGKILLed and restarted mid-download', () => {
  let h: Harness;
  const account = 'dbid:redis-restart';

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => { await h.close(); });

  it('reconnects and converges: exact mirror, one entry per post, idle without lastError', async () => {
    seed(h.emulator, account);
    h.emulator.faults.setLatency(40, 'files/download'); // 120 files / 4 at a time: about 1.2 s of downloads
    expect((await h.linkAccount(account)).status).toBe(200);
    await waitUntil(async () => h.engine.host.actor(account)?.getSnapshot().value === 'downloading' && (await readMirror(h.dataDir, account)).size >= 10, 10_000, 'the download phase with some files on disk');

    await h.redisServer.restart(); // SIGKILL, then a fresh redis-server that replays the AOF
    const onDisk = (await readMirror(h.dataDir, account)).size;
    expect(onDisk).toBeLessThan(POSTS); // really mid-download

    // Changes made around the outage arrive through a webhook once Redis is back.
    h.emulator.model.writeFile(account, name(1), post(1, 2));
    h.emulator.model.remove(account, name(2));
    await waitUntil(async () => (await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 })).status === 200, 10_000, 'a webhook to be accepted after the restart');
    h.emulator.faults.setLatency(0, 'files/download');
    await h.waitForIdle(account, 30_000);
    await expectConverged(h.engine, h.emulator, h.dataDir, account);
    expect((await h.engine.entries.list(account)).find((e) => e.path === name(1))?.title).toBe('Post 1 v2');
  }, 60_000);
});


const COMMAND_TIMEOUT_MS = 300;

function liveState(engine: Engine, accountId: string) {
  const snapshot = engine.host.actor(accountId)?.getSnapshot();
  return snapshot ? { state: String(snapshot.value), attempt: snapshot.context.attempt, lastError: snapshot.context.lastError } : undefined;
}

describe('(b) Redis down for longer than the command timeout', () => {
  let e: Harness;
  const account = 'dbid:redis-down';

  beforeAll(async () => {
    e = await startHarness({ redisCommandTimeoutMs: COMMAND_TIMEOUT_MS });
  });
  afterAll(async () => { await e.close(); });

  it('parks the actor in backoff with a redis error, then resumes and converges once Redis is back', async () => {
    seed(e.emulator, account);
    e.emulator.faults.setLatency(40, 'files/download');
    expect((await e.linkAccount(account)).status).toBe(200);
    await waitUntil(async () => liveState(e.engine, account)?.state === 'downloading' && (await readMirror(e.dataDir, account)).size >= 10, 10_000, 'the download phase with some files on disk');

    await e.redisServer.kill();
    const downAt = Date.now();
    // The actor must land in backoff with a redis error, and keep retrying into backoff while Redis
    // stays down (attempt 2 means: the first deadline passed, the step ran again, failed again).
    await waitUntil(() => {
      const live = liveState(e.engine, account);
      return live?.state === 'backoff' && live.lastError?.kind === 'redis' && live.attempt >= 2;
    }, 15_000, 'the actor to fail twice into backoff with a redis error');
    expect(Date.now() - downAt).toBeGreaterThan(COMMAND_TIMEOUT_MS);
    const parked = liveState(e.engine, account)!;
    expect(parked.lastError).toMatchObject({ kind: 'redis' });
    expect((await readMirror(e.dataDir, account)).size).toBeLessThan(POSTS);

    // The process stays healthy and answers fast while Redis is down.
    expect((await fetch(`${e.url}/healthz`)).status).toBe(200);
    const started = Date.now();
    expect((await fetch(`${e.url}/readyz`)).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(2_000);

    await e.redisServer.restart();
    e.emulator.faults.setLatency(0, 'files/download');
    // No webhook, no resync: the backoff deadline alone brings the actor back.
    await e.waitForIdle(account, 30_000);
    await expectConverged(e.engine, e.emulator, e.dataDir, account);
    expect(liveState(e.engine, account)).toMatchObject({ state: 'idle', attempt: 0, lastError: null });
  }, 60_000);
});

describe('(c) Redis frozen (SIGSTOP) for longer than the command timeout', () => {
  let e: Harness;
  let frozenPid: number | undefined;
  const account = 'dbid:redis-frozen';

  beforeAll(async () => {
    e = await startHarness({ redisCommandTimeoutMs: COMMAND_TIMEOUT_MS });
  });
  afterEach(() => {
    if (frozenPid) process.kill(frozenPid, 'SIGCONT');
    frozenPid = undefined;
  });
  afterAll(async () => { await e.close(); });

  it('times commands out into backoff, survives the late execution of timed-out commands, and converges', async () => {
    const pid = Number(/process_id:(\d+)/.exec(await (e.redis as Redis).info('server'))?.[1]);
    expect(pid).toBeGreaterThan(0);
    seed(e.emulator, account, 60);
    e.emulator.faults.setLatency(40, 'files/download');
    expect((await e.linkAccount(account)).status).toBe(200);
    await waitUntil(async () => liveState(e.engine, account)?.state === 'downloading' && (await readMirror(e.dataDir, account)).size >= 5, 10_000, 'the download phase with some files on disk');

    const servedAtFreeze = e.emulator.stats.downloads(account);
    process.kill(pid, 'SIGSTOP');
    frozenPid = pid;
    // The first item that cannot record its file halts the step: only downloads already in flight
    // finish, instead of the whole queue being fetched and thrown away.
    await waitUntil(() => {
      const live = liveState(e.engine, account);
      return live?.state === 'backoff' && live.lastError?.kind === 'redis';
    }, 5_000, 'the actor to time out into backoff with a redis error');
    expect(e.emulator.stats.downloads(account) - servedAtFreeze).toBeLessThanOrEqual(8);
    expect(liveState(e.engine, account)?.lastError?.message).toMatch(/timed out/i);
    const started = Date.now();
    expect((await fetch(`${e.url}/readyz`)).status).toBe(503); // ping times out after 300 ms
    expect(Date.now() - started).toBeLessThan(2_000);

    process.kill(pid, 'SIGCONT');
    frozenPid = undefined;
    // A change and a webhook right after the thaw, racing the replayed commands.
    e.emulator.model.writeFile(account, name(3), post(3, 2));
    await waitUntil(async () => (await sendWebhook({ url: `${e.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 })).status === 200, 10_000, 'a webhook to be accepted after the thaw');
    e.emulator.faults.setLatency(0, 'files/download');
    await e.waitForIdle(account, 30_000);
    await expectConverged(e.engine, e.emulator, e.dataDir, account);
    expect((await e.engine.entries.list(account)).find((x) => x.path === name(3))?.title).toBe('Post 3 v2');
  }, 60_000);
});
