import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { accountKeys } from '../../src/redis/keys.js';
import { startProcessFixture, type ProcessFixture } from '../support/process-fixture.js';
import { APP_SECRET, expectedMirror, readMirror, waitUntil } from '../support/sync-harness.js';
import { storedActorState } from '../support/stored-actor.js';

/**
 * The zombie owner: process A owns a busy account and is frozen (SIGSTOP) with downloads in
 * flight. Its lease runs out, B's reaper takes the account over and finishes it, more changes and
 * webhooks arrive at B. Then A is thawed (SIGCONT): it must notice it lost the account and nothing
 * it does afterwards may land, neither in Redis (fenced) nor in the mirror folder both share.
 */
let fixture: ProcessFixture;
let redis: Redis;
let emulator: RunningEmulator;
let dataDir: string;
const account = 'dbid:zombie-owner';
const POSTS = 120;


/** Every Redis key of the account, read whole, so "nothing changed" can be checked exactly. */
async function dumpAccount(accountId: string): Promise<Record<string, unknown>> {
  const dump: Record<string, unknown> = {};
  for (const key of Object.values(accountKeys(accountId))) {
    const type = await redis.type(key);
    if (type === 'string') dump[key] = await redis.get(key);
    else if (type === 'hash') dump[key] = await redis.hgetall(key);
    else if (type === 'list') dump[key] = await redis.lrange(key, 0, -1);
    else if (type !== 'none') dump[key] = type;
  }
  return dump;
}

const count = (text: string, needle: string) => text.split(needle).length - 1;

beforeAll(async () => {
  fixture = await startProcessFixture('zombie');
  ({ redis, emulator, dataDir } = fixture);
});
afterAll(async () => { await fixture?.close(); });

describe('an owner frozen past its lease (zombie)', () => {
  it('is taken over by the reaper, and once thawed has none of its writes accepted', async () => {
    const k = accountKeys(account);
    emulator.model.addAccount(account, { accessToken: 'tok-zombie' });
    for (let n = 0; n < POSTS; n++) emulator.model.writeFile(account, `/posts/${n}.md`, `# Post ${n}\n\nfirst version of ${n}`);
    emulator.faults.setLatency(200, 'files/download'); // A is mid-download when it freezes

    const env = { LEASE_TTL_MS: '1000', SWEEP_INTERVAL_MS: '200', ACCOUNT_DOWNLOAD_CONCURRENCY: '4' };
    const [a, b] = await Promise.all([
      fixture.startEngine(env),
      fixture.startEngine(env),
    ]);
    expect((await a.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: 'tok-zombie' }) })).status).toBe(200);
    await waitUntil(() => emulator.stats.downloads(account) >= 20, 20_000, 'A to be downloading');
    const holderA = await redis.get(k.lease);
    expect(holderA).toMatch(/\|\d+$/);
    expect(a.output).not.toContain('"msg":"restored"');

    // Freeze A while several of its downloads wait in the emulator (counted as calls, not yet
    // served): their answers, the old bytes, reach A's socket buffers while it is frozen.
    await waitUntil(() => {
      if (emulator.stats.calls(account, 'files/download') - emulator.stats.downloads(account) < 3) return false;
      a.childProcess!.kill('SIGSTOP');
      return true;
    }, 10_000, 'A to have downloads in flight');
    await waitUntil(() => emulator.stats.calls(account, 'files/download') === emulator.stats.downloads(account), 20_000, "A's requests to be answered");
    const onDisk = new Set(await redis.hkeys(k.files));
    const inFlight = Object.keys(emulator.stats.downloadsByPath(account)).filter((path) => !onDisk.has(path));
    expect(inFlight.length).toBeGreaterThan(0); // A froze holding bytes it has not recorded yet
    expect(await storedActorState(redis, account)).toBe('downloading');

    // Dropbox moves on while A is frozen: exactly the files A holds stale bytes of change, one
    // not yet downloaded is deleted, a new post appears; the webhook goes to B.
    emulator.faults.setLatency(5, 'files/download');
    for (const path of inFlight) emulator.model.writeFile(account, path, `# ${path}\n\nsecond version, written while A was frozen`);
    emulator.model.remove(account, `/posts/${POSTS - 1}.md`);
    emulator.model.writeFile(account, '/posts/new-while-frozen.md', '# New\n\nwritten while A was frozen');
    expect((await sendWebhook({ url: `${b.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 })).status).toBe(200);

    // B's reaper takes the account over: a new lease (new fencing token), restored from Redis.
    await waitUntil(async () => {
      const holder = await redis.get(k.lease);
      return holder !== null && holder !== holderA && b.output.includes('"msg":"restored"');
    }, 10_000, 'B to take the account over');
    const holderB = (await redis.get(k.lease))!;
    expect(Number(holderB.split('|')[1])).toBeGreaterThan(Number(holderA!.split('|')[1]));
    expect(await redis.hget(k.fence, 'fence')).toBe(holderB.split('|')[1]);

    const idle = async () => {
      const [box, state, queued, changes] = await Promise.all([redis.hgetall(k.mailbox), storedActorState(redis, account), redis.hlen(k.queue), redis.llen(k.changes)]);
      return box.status === 'idle' && box.dirty !== '1' && state === 'idle' && queued === 0 && changes === 0;
    };
    await waitUntil(idle, 20_000, 'B to finish the sync');

    // One more round while A is still frozen: B's actor is idle in memory, the webhook wakes it.
    emulator.model.writeFile(account, '/posts/0.md', '# Post 0\n\nthird version, B alone');
    emulator.model.writeFile(account, '/posts/after-takeover.md', '# After\n\nwritten after the takeover');
    expect((await sendWebhook({ url: `${b.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 })).status).toBe(200);
    await waitUntil(async () => (await redis.hexists(k.files, '/posts/after-takeover.md')) === 1 && (await idle()), 20_000, 'B to sync the second round');

    expect(await readMirror(dataDir, account)).toEqual(expectedMirror(emulator, account));
    const settled = await dumpAccount(account);
    const versionAfterB = Number(await redis.hget(k.mailbox, 'actorVersion'));
    expect(versionAfterB).toBeGreaterThan(0);
    const lostBefore = count(a.output, 'lost ownership');
    const downloadsDoneBefore = count(a.output, '"msg":"downloads done"');

    // Thaw A. It must find out it lost the account, and its in-flight download step must settle
    // ("downloads done" is logged once every item it held has finished, written or refused).
    a.childProcess!.kill('SIGCONT');
    await waitUntil(() => count(a.output, 'lost ownership') > lostBefore, 10_000, 'A to log that it lost ownership');
    await waitUntil(() => count(a.output, '"msg":"downloads done"') > downloadsDoneBefore, 10_000, "A's in-flight download step to settle");
    expect((await a.api('/healthz')).ok).toBe(true); // the zombie did not crash: it stepped aside

    expect(count(a.output, 'lost ownership')).toBe(lostBefore + 1);
    expect(b.output).not.toContain('lost ownership');

    if (a.output.includes('asking its owner for a full reconcile')) {
      // Rare: A was frozen between its fenced check and a rename, so it renamed a stale file into
      // the shared mirror after thawing. It cannot undo that, so it asked B for a full reconcile
      // (a mailbox request, not an actor write); B re-hashes the disk and repairs the file.
      await waitUntil(async () => (await redis.hget(k.mailbox, 'resync')) === null && (await idle()), 20_000, "the reconcile");
    } else {
      // Nothing in Redis moved: same fence, same holder (B), same snapshot version, same index.
      expect(await dumpAccount(account)).toEqual(settled);
      expect(await redis.get(k.lease)).toBe(holderB);
      expect(Number(await redis.hget(k.mailbox, 'actorVersion'))).toBe(versionAfterB);
    }

    // ...and nothing on disk: the mirror both processes share is still exactly Dropbox.
    expect(await readMirror(dataDir, account)).toEqual(expectedMirror(emulator, account));

    const posts = [...expectedMirror(emulator, account).keys()].filter((path) => path.endsWith('.md'));
    const entries = Object.values(await redis.hgetall(k.entries)).map((raw) => JSON.parse(raw) as { id: string; path: string });
    expect(entries).toHaveLength(posts.length);
    expect(new Set(entries.map((e) => e.id)).size).toBe(posts.length);
    expect(entries.map((e) => e.path).sort()).toEqual([...posts].sort());
    expect(await redis.hlen(k.entryIds)).toBe(posts.length);
    expect(emulator.stats.maxListingsInFlight(account)).toBeLessThanOrEqual(1);
  }, 60_000);
});
