import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { storedCursor } from '../../src/sync/stored-cursor.js';
import type { DownloadItem } from '../../src/sync/records.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expectedMirror, readMirror, startHarness, waitUntil, type Harness, expectConverged as expectAccountConverged } from '../support/sync-harness.js';

/**
 * Dropbox may invalidate a cursor at any time (409 `reset` on list_folder/continue). Deletions made
 * between the old cursor and the reset are then never reported: the engine must list everything
 * again and reconcile, removing what the full listing no longer holds, without downloading again
 * the files whose bytes it already has.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

const account = 'dbid:faults-reset';
const at = new Date('2024-05-01T12:00:00Z');



describe('a cursor reset (409 reset on list_folder/continue)', () => {
  it('lists everything again, removes what is gone, and re-downloads nothing unchanged', async () => {
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-reset' });
    model.writeFile(account, '/posts/keep.md', '# Keep\n\nunchanged', { clientModified: at });
    model.writeFile(account, '/posts/edit.md', '# Edit v1', { clientModified: at });
    model.writeFile(account, '/posts/gone.md', '# Gone', { clientModified: at });
    model.writeFile(account, '/old-folder/inside.md', '# Inside', { clientModified: at });
    model.writeFile(account, '/old-folder/deeper/asset.bin', 'bytes', { clientModified: at });
    model.writeFile(account, '/assets/logo.png', 'png bytes', { clientModified: at });
    expect((await h.linkAccount(account, { accessToken: 'tok-reset' })).status).toBe(200);
    await h.waitForIdle(account);
    await expectAccountConverged(h, account);
    const idsBefore = new Map((await h.engine.entries.list(account)).map((e) => [e.path, e.id]));

    // While the engine is idle: deletions, an edit, an addition, then Dropbox resets every cursor.
    model.remove(account, '/posts/gone.md');
    model.remove(account, '/old-folder');
    model.writeFile(account, '/posts/edit.md', '# Edit v2', { clientModified: at });
    model.writeFile(account, '/posts/new.md', '# New', { clientModified: at });
    model.reset(account);
    h.emulator.stats.resetStats();

    expect(await h.engine.notify([account])).toEqual({ [account]: 'wake' });
    // Wait for the run to start before waiting for idle (the account is idle before the wake lands).
    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder') > 0, 10_000, 'the full re-listing');
    await h.waitForIdle(account);

    // The engine saw the reset on continue, then listed from scratch (once).
    expect(h.emulator.stats.calls(account, 'files/list_folder/continue')).toBeGreaterThanOrEqual(1);
    expect(h.emulator.stats.calls(account, 'files/list_folder')).toBe(1);
    expect(h.emulator.stats.maxListingsInFlight(account)).toBe(1);

    await expectAccountConverged(h, account);
    const mirror = await readMirror(h.dataDir, account);
    expect(mirror.has('/posts/gone.md')).toBe(false);
    expect([...mirror.keys()].some((p) => p.startsWith('/old-folder'))).toBe(false);
    expect(mirror.get('/posts/edit.md')?.content).toBe('# Edit v2');

    // Unchanged files were recognised by their content hash, not fetched again.
    expect(h.emulator.stats.downloads(account, '/posts/keep.md')).toBe(0);
    expect(h.emulator.stats.downloads(account, '/assets/logo.png')).toBe(0);
    // Changed and new files were fetched exactly once.
    expect(h.emulator.stats.downloads(account, '/posts/edit.md')).toBe(1);
    expect(h.emulator.stats.downloads(account, '/posts/new.md')).toBe(1);
    expect(h.emulator.stats.downloads(account)).toBe(2);

    // Entries of deleted posts are gone; surviving posts keep their ids.
    const idsAfter = new Map((await h.engine.entries.list(account)).map((e) => [e.path, e.id]));
    expect(idsAfter.has('/posts/gone.md')).toBe(false);
    expect(idsAfter.has('/old-folder/inside.md')).toBe(false);
    expect(idsAfter.get('/posts/keep.md')).toBe(idsBefore.get('/posts/keep.md'));
    expect(idsAfter.get('/posts/edit.md')).toBe(idsBefore.get('/posts/edit.md'));

    // And the new cursor works: a later change goes through continue, no full listing.
    h.emulator.stats.resetStats();
    model.writeFile(account, '/posts/after.md', '# After', { clientModified: at });
    await h.engine.notify([account]);
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/after.md') > 0, 10_000, 'the follow-up download');
    await h.waitForIdle(account);
    expect(h.emulator.stats.calls(account, 'files/list_folder')).toBe(0);
    await expectAccountConverged(h, account);
  });

  it('a reset between the pages of a first sync drops the partial listing and lists from scratch', async () => {
    const id = 'dbid:faults-reset-mid-listing';
    const model = h.emulator.model;
    model.addAccount(id, { accessToken: 'tok-reset-mid' });
    for (let n = 0; n < 250; n++) model.writeFile(id, `/posts/${String(n).padStart(3, '0')}.md`, `# Post ${n}`, { clientModified: at });
    // Slow continues leave time to change Dropbox while the second page is on its way.
    h.emulator.faults.setLatency(150, 'files/list_folder/continue');
    expect((await h.linkAccount(id, { accessToken: 'tok-reset-mid' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.calls(id, 'files/list_folder/continue') >= 1, 10_000, 'the second page to be requested');
    // Page 1 (/posts/000-099 or so) is saved; now a file of it is deleted and every cursor reset.
    model.remove(id, '/posts/005.md');
    model.writeFile(id, '/posts/late.md', '# Late', { clientModified: at });
    model.reset(id);
    await waitUntil(() => h.emulator.stats.calls(id, 'files/list_folder') >= 2, 10_000, 'the listing from scratch');
    h.emulator.faults.setLatency(0, 'files/list_folder/continue');
    await h.waitForIdle(id);

    await expectAccountConverged(h, id);
    expect(h.emulator.stats.calls(id, 'files/list_folder')).toBe(2);
    expect(h.emulator.stats.downloads(id, '/posts/005.md')).toBe(0); // listed in the dropped page, never fetched
    expect(h.emulator.stats.downloads(id)).toBe(250); // 249 left + late.md, each once
    expect(h.emulator.stats.maxListingsInFlight(id)).toBe(1);
  });

  it('a cursor Dropbox refuses as bad input (400) is dropped like a reset: the account lists everything again', async () => {
    // The request's only argument is the cursor, so nothing but a new listing gets past a 400:
    // retried from the same cursor, the account backed off for good (a stored cursor mangled by a
    // bug, or one from another app's listing).
    const id = 'dbid:faults-refused-cursor';
    const model = h.emulator.model;
    model.addAccount(id, { accessToken: 'tok-refused-cursor' });
    model.writeFile(id, '/posts/a.md', '# A', { clientModified: at });
    expect((await h.linkAccount(id, { accessToken: 'tok-refused-cursor' })).status).toBe(200);
    await h.waitForIdle(id);
    await h.redis.set(accountKeys(id).cursor, storedCursor('not-a-cursor-dropbox-knows'));
    model.writeFile(id, '/posts/b.md', '# B', { clientModified: at });
    h.emulator.stats.resetStats();

    await h.engine.notify([id]);
    await waitUntil(() => h.emulator.stats.calls(id, 'files/list_folder') > 0, 10_000, 'the listing from scratch');
    await h.waitForIdle(id);
    await expectAccountConverged(h, id);
    expect(h.emulator.stats.calls(id, 'files/list_folder/continue')).toBe(1);
    expect(h.emulator.stats.calls(id, 'files/list_folder')).toBe(1);
    expect(h.emulator.stats.downloads(id, '/posts/a.md')).toBe(0); // its bytes were already there
    expect((await h.status(id)).lastError).toBeNull();
  });

  it('a full listing removes a file renamed into place whose completion a crash took, once Dropbox no longer has it', async () => {
    // The download step renames a file into place, then records it (index, queue) in Redis: a
    // crash between the two leaves the file on disk, still queued, unknown to the index. If Dropbox
    // deletes it before the next run and the next listing is a full one, nothing lists its deletion.
    const id = 'dbid:faults-reset-orphan';
    const model = h.emulator.model;
    model.addAccount(id, { accessToken: 'tok-reset-orphan' });
    model.writeFile(id, '/posts/a.md', '# A', { clientModified: at });
    expect((await h.linkAccount(id, { accessToken: 'tok-reset-orphan' })).status).toBe(200);
    await h.waitForIdle(id);
    const orphan: DownloadItem = {
      pathLower: '/posts/orphan.md', pathDisplay: '/posts/orphan.md', id: 'id:orphan', rev: '0123456789a', contentHash: 'f'.repeat(64),
      size: 8, clientModified: at.toISOString().replace('.000', ''), serverModified: at.toISOString().replace('.000', ''),
    };
    await writeFile(join(mirrorFolder(h.dataDir, id), 'posts', 'orphan.md'), '# Orphan');
    await h.redis.hset(accountKeys(id).queue, orphan.pathLower, JSON.stringify(orphan));
    model.reset(id);

    await h.engine.notify([id]);
    await waitUntil(() => h.emulator.stats.calls(id, 'files/list_folder') > 1, 10_000, 'the full listing');
    await h.waitForIdle(id);
    expect((await readMirror(h.dataDir, id)).has('/posts/orphan.md')).toBe(false);
    await expectAccountConverged(h, id);
  });
});
