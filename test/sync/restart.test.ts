import { readdir } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { accountKeys } from '../../src/redis/keys.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { startProcessFixture, type ProcessFixture } from '../support/process-fixture.js';
import { expectedMirror, readMirror, waitUntil } from '../support/sync-harness.js';
import { storedActorState } from '../support/stored-actor.js';

/**
 * The engine process is killed (SIGKILL, no chance to clean up) in the middle of downloading; a new
 * process started on the same Redis and folder finishes the sync with no webhook, creates no
 * duplicate entry and does not download again what was already on disk, nor leaves the killed
 * downloads' temp files in the mirror.
 */
let fixture: ProcessFixture;
let redis: Redis;
let emulator: RunningEmulator;
let dataDir: string;
const account = 'dbid:restart';
const CONCURRENCY = 4;

beforeAll(async () => {
  fixture = await startProcessFixture('restart');
  ({ redis, emulator, dataDir } = fixture);
});
afterAll(async () => { await fixture?.close(); });

describe('killing the engine mid-download', () => {
  it('resumes on boot without a webhook, with no duplicate entry and no repeated download', async () => {
    emulator.model.addAccount(account, { accessToken: 'tok-restart' });
    for (let n = 0; n < 200; n++) emulator.model.writeFile(account, `/posts/${n}.md`, `# Post ${n}\n\ntext ${n}`);
    emulator.faults.setLatency(25, 'files/download'); // slow enough to kill it in the middle

    // The killed process's lease must expire before another may take the account over.
    const env = { ACCOUNT_DOWNLOAD_CONCURRENCY: String(CONCURRENCY), LEASE_TTL_MS: '1000', SWEEP_INTERVAL_MS: '200' };
    const first = await fixture.startEngine(env);
    expect((await first.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: 'tok-restart' }) })).status).toBe(200);
    await waitUntil(() => emulator.stats.downloads(account) >= 60, 20_000, '60 downloads');
    await first.kill('SIGKILL');

    const k = accountKeys(account);
    expect(await storedActorState(redis, account)).toBe('downloading');
    const doneBeforeKill = await redis.hkeys(k.files);
    const queuedAtKill = await redis.hlen(k.queue);
    expect(doneBeforeKill.length).toBeGreaterThan(50);
    expect(queuedAtKill).toBeGreaterThan(0);
    const downloadsBefore = emulator.stats.downloadsByPath(account);
    const tempFiles = async () => (await readdir(mirrorFolder(dataDir, account), { recursive: true })).map(String).filter((name) => name.endsWith('.mailroom-tmp'));
    // The downloads in flight had their temp files open (each opened while its bytes arrive).
    expect((await tempFiles()).length).toBeGreaterThan(0);

    emulator.faults.setLatency(0, 'files/download');
    const second = await fixture.startEngine(env);
    await waitUntil(async () => {
      const [status, pending] = await Promise.all([redis.hget(k.mailbox, 'status'), redis.hlen(k.queue)]);
      return status === 'idle' && pending === 0;
    }, 30_000, 'the resumed sync to finish');

    expect(await readMirror(dataDir, account)).toEqual(expectedMirror(emulator, account));
    expect(await tempFiles()).toEqual([]); // removed by the resumed download step
    const entries = await redis.hgetall(k.entries);
    expect(Object.keys(entries)).toHaveLength(200);
    expect(await redis.hlen(k.entryIds)).toBe(200);

    // Files finished before the kill were not fetched again; at most the in-flight ones were: one
    // per download slot, and one per slot whose bytes had arrived and were being written.
    for (const path of doneBeforeKill) {
      if (path.endsWith('.md')) expect(emulator.stats.downloads(account, path)).toBe(downloadsBefore[path]);
    }
    const repeated = Object.values(emulator.stats.downloadsByPath(account)).filter((count) => count > 1).length;
    expect(repeated).toBeLessThanOrEqual(2 * CONCURRENCY);
    expect(second.output).toContain('"msg":"restored"');
  }, 90_000);
});
