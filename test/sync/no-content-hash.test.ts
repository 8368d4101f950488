import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectConverged, readMirror, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * A Dropbox-compatible server that lists no content_hash (Dropbox itself always does): the bytes
 * cannot be checked, so they are taken as they come, and a file is known unchanged by its rev.
 * Before, every download failed its hash check for good and the account never reached idle, and
 * a later edit would have been taken for unchanged (two empty hashes).
 */
let h: Harness;
beforeAll(async () => { h = await startHarness({ emulator: { listsContentHash: false } }); });
afterAll(async () => { await h?.close(); });

describe('a server that lists no content_hash', () => {
  it('syncs, and syncs an edit; a file listed again with its rev is not downloaded again', async () => {
    const account = 'dbid:no-content-hash';
    await h.linkSynced(account, { '/posts/a.md': '# A', '/b.txt': 'b' });
    await expectConverged(h, account);

    h.emulator.model.writeFile(account, '/posts/a.md', '# A, edited');
    await h.syncChanges(account);
    expect((await readMirror(h.dataDir, account)).get('/posts/a.md')?.content).toBe('# A, edited');
    expect(h.emulator.stats.downloads(account, '/b.txt')).toBe(1);
    await expectConverged(h, account);
  });
});
