import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPEN_AHEAD_MAX_BYTES } from '../../src/sync/download-queue.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { expectConverged, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * A small file's temp file is opened while its bytes download (openTempAhead), so it stands in the
 * user's mirror folder for as long as the download runs. Whatever becomes of the download, none is
 * left behind. The emulator keeps no bytes of superseded or deleted revisions here, so a file
 * deleted after its listing answers 409 path/not_found, as Dropbox does once a revision is gone.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness({ emulator: { supersededRevisionBytes: 0 }, dropboxCallTimeoutMs: 1_000 }); });
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

  it('a file above the open-ahead size is written whole, beside small ones, with no temp file left', async () => {
    const account = 'dbid:temp-sizes';
    const large = 'x'.repeat(OPEN_AHEAD_MAX_BYTES + 1);
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/large.bin', large, { clientModified: at });
    h.emulator.model.writeFile(account, '/small.md', '# Small', { clientModified: at });
    expect((await h.linkAccount(account)).status).toBe(200);
    await h.waitForIdle(account);
    expect(await namesIn(account)).toEqual(['large.bin', 'small.md']);
    expect((await readMirror(h.dataDir, account)).get('/large.bin')?.content).toBe(large);
    await expectConverged(h, account);
  });
});
