import { mkdtempSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPEN_AHEAD_MAX_BYTES } from '../../src/sync/download-queue.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { silentLogger } from '../../src/logger.js';
import { expectConverged, readMirror, startEngineServer, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * A small file's temp file is opened while its bytes download (openTempAhead), so it stands in the
 * user's mirror folder for as long as the download runs. Whatever becomes of the download, none is
 * left behind. The emulator keeps no bytes of superseded or deleted revisions here, so a file
 * deleted after its listing answers 409 path/not_found, as Dropbox does once a revision is gone.
 * A hung download is cut by the 3 s call deadline: the margin for the test to act while it hangs.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness({ emulator: { supersededRevisionBytes: 0 }, dropboxCallTimeoutMs: 3_000 }); });
afterAll(async () => { await h.close(); });

const at = new Date('2024-05-01T12:00:00Z');

async function namesIn(accountId: string): Promise<string[]> {
  return (await readdir(mirrorFolder(h.dataDir, accountId), { recursive: true })).map(String).sort();
}

describe('temp files of downloads', () => {
  it('a file deleted while its download hangs is dropped when the retry finds it gone, leaving no temp file', async () => {
    const account = 'dbid:temp-gone';
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/posts/gone.md', '# Gone soon', { clientModified: at });
    h.emulator.model.writeFile(account, '/posts/kept.md', '# Kept', { clientModified: at });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/posts/gone.md', hang: true });
    expect((await h.linkAccount(account)).status).toBe(200);
    // The download is under way, its temp file opened beside it; it hangs until the call deadline.
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/gone.md') >= 1, 30_000, 'the download of gone.md');
    await waitUntil(async () => (await namesIn(account)).includes('posts/kept.md'), 30_000, 'kept.md in place');
    expect((await namesIn(account)).filter((name) => name.endsWith('.mailroom-tmp'))).toHaveLength(1);
    h.emulator.model.remove(account, '/posts/gone.md');
    await h.waitForIdle(account);
    // kept.md, the hung call, and its retry (answered 409, so not counted as a download of the path).
    expect(h.emulator.stats.calls(account, 'files/download')).toBe(3);
    expect(h.emulator.stats.downloads(account, '/posts/gone.md')).toBe(1);
    expect(await namesIn(account)).toEqual(['posts', 'posts/kept.md']);
    await expectConverged(h, account);
  }, 60_000);

  it('a file above the open-ahead size has no temp file while its bytes download, and is written whole', async () => {
    const account = 'dbid:temp-sizes';
    const large = 'x'.repeat(OPEN_AHEAD_MAX_BYTES + 1);
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/large.bin', large, { clientModified: at });
    h.emulator.model.writeFile(account, '/small.md', '# Small', { clientModified: at });
    // The large file's first download hangs until the call deadline, then is retried.
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/large.bin', hang: true });
    expect((await h.linkAccount(account)).status).toBe(200);
    await waitUntil(async () => h.emulator.stats.downloads(account, '/large.bin') >= 1 && (await namesIn(account)).includes('small.md'), 30_000, 'small.md in place and large.bin downloading');
    if (h.emulator.stats.downloads(account, '/large.bin') === 1) expect(await namesIn(account)).toEqual(['small.md']);
    await h.waitForIdle(account);
    expect(await namesIn(account)).toEqual(['large.bin', 'small.md']);
    expect((await readMirror(h.dataDir, account)).get('/large.bin')?.content).toBe(large);
    await expectConverged(h, account);
  }, 60_000);

  it('a graceful shutdown while downloads are under way leaves no temp file in the mirror', async () => {
    const account = 'dbid:temp-shutdown';
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    for (let n = 0; n < 6; n++) h.emulator.model.writeFile(account, `/posts/${n}.md`, `# ${n}`, { clientModified: at });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, hang: true, times: Number.POSITIVE_INFINITY });
    // An engine of its own, so that this one can be shut down while the others go on.
    const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-temp-shutdown-'));
    const other = await startEngineServer({ redisUrl: h.redisServer.url, dataDir, emulatorUrl: h.emulator.url, log: silentLogger });
    const temps = async () => (await readdir(mirrorFolder(dataDir, account), { recursive: true }).catch(() => [])).map(String).filter((name) => name.endsWith('.mailroom-tmp'));
    let open = true;
    try {
      expect((await other.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${account}` }) })).status).toBe(200);
      // Four downloads at a time (downloadsPerAccount), each hanging with its temp file open.
      await waitUntil(async () => (await temps()).length === 4, 30_000, 'four hanging downloads with their temp files');
      await other.close();
      open = false;
      expect(await temps()).toEqual([]);
    } finally {
      if (open) await other.close();
      h.emulator.faults.clear();
      expect((await h.api(`/accounts/${account}`, { method: 'DELETE' })).status).toBe(204);
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
