import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MirrorFiles } from '../../src/sync/download-queue.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { SyncStore } from '../../src/sync/sync-store.js';
import { expectConverged, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * The repair for what fencing cannot stop: a process that lost the account between its fenced
 * check and a rename can leave a stale file in the shared mirror. It asks for a full reconcile,
 * which re-hashes the disk against Dropbox and downloads what differs.
 */
let h: Harness;
const logLines: string[] = [];
beforeAll(async () => { h = await startHarness({ logLines, engine: { leaseTtlMs: 400 } }); });
afterAll(async () => { await h.close(); });
const originalComplete = SyncStore.prototype.completeDownload;
afterEach(() => { SyncStore.prototype.completeDownload = originalComplete; });

describe('a full reconcile', () => {
  it('repairs a mirror file that no longer matches Dropbox, downloading only that file', async () => {
    const account = 'dbid:reconcile-stale';
    h.emulator.model.addAccount(account, { accessToken: 'tok-r1' });
    h.emulator.model.writeFile(account, '/posts/a.md', '# A\n\nthe real text');
    h.emulator.model.writeFile(account, '/posts/b.md', '# B');
    await h.linkAccount(account, { accessToken: 'tok-r1' });
    await h.waitForIdle(account);
    // What a thawed former owner could leave behind: stale bytes the index believes are current.
    await writeFile(join(mirrorFolder(h.dataDir, account), 'posts', 'a.md'), '# A\n\nan old version');
    expect((await h.api(`/accounts/${account}/resync`, { method: 'POST' })).status).toBe(202);
    await h.waitForIdle(account);
    await expectConverged(h, account);
    expect((await readMirror(h.dataDir, account)).get('/posts/a.md')?.content).toBe('# A\n\nthe real text');
    expect(h.emulator.stats.downloads(account, '/posts/a.md')).toBe(2);
    expect(h.emulator.stats.downloads(account, '/posts/b.md')).toBe(1);
  });

  it('recognises the files already on disk in a folder with many queued files (listed, not stat\'ed one by one)', async () => {
    const account = 'dbid:reconcile-many';
    h.emulator.model.addAccount(account, { accessToken: 'tok-r3' });
    const paths = Array.from({ length: 3 * MirrorFiles.LIST_FROM }, (_, n) => `/notes/n${n}.txt`);
    for (const path of paths) h.emulator.model.writeFile(account, path, `note ${path}`);
    await h.linkAccount(account, { accessToken: 'tok-r3' });
    await h.waitForIdle(account);
    await writeFile(join(mirrorFolder(h.dataDir, account), 'notes', 'n5.txt'), 'an old version');
    expect((await h.api(`/accounts/${account}/resync`, { method: 'POST' })).status).toBe(202);
    await h.waitForIdle(account);
    await expectConverged(h, account);
    for (const path of paths) expect(h.emulator.stats.downloads(account, path)).toBe(path === '/notes/n5.txt' ? 2 : 1);
  });

  it('is requested by a step that renamed a file into place and only then found the account taken over', async () => {
    const account = 'dbid:reconcile-request';
    h.emulator.model.addAccount(account, { accessToken: 'tok-r2' });
    h.emulator.model.writeFile(account, '/posts/c.md', '# C');
    let fenced = false;
    SyncStore.prototype.completeDownload = async function (this: SyncStore, accountId, item, entry) {
      if (accountId === account && !fenced) {
        fenced = true;
        throw Object.assign(new Error('FENCED the account is owned by a newer lease (token 1)'), { name: 'ReplyError' });
      }
      return originalComplete.call(this, accountId, item, entry);
    };
    const fullListings = () => h.emulator.stats.calls(account, 'files/list_folder');
    await h.linkAccount(account, { accessToken: 'tok-r2' });
    await waitUntil(() => logLines.some((l) => l.includes('asking its owner for a full reconcile') && l.includes(account)), 10_000, 'the reconcile request');
    // The account is picked up again (the reaper, here run by hand) and re-listed in full.
    await waitUntil(async () => {
      await h.engine.sweep();
      return fullListings() >= 2 && (await h.status(account)).state === 'idle' && !(await h.engine.mailbox.read(account)).dirty;
    }, 15_000, 'the full reconcile');
    await h.waitForIdle(account);
    await expectConverged(h, account);
  });
});
