import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setAsideReason } from '../../src/sync/download-queue.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { expectConverged, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * A file that cannot be written at its path, however often it is tried, must not hold the rest of
 * the account: it is set aside with its reason, shown in the status, and tried again once a listing
 * names it again.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

const at = new Date('2024-05-01T12:00:00Z');

describe('a file that cannot be written at its path', () => {
  it('is set aside and shown; the rest syncs, later changes too; a change to it brings it back', async () => {
    const account = 'dbid:set-aside';
    await h.linkSynced(account, { '/ok.md': '# OK' }, at);

    // A folder stands where a new post must go (left in the mirror by hand): renaming onto it fails.
    const blocked = join(mirrorFolder(h.dataDir, account), 'blocked.md');
    await mkdir(join(blocked, 'inside'), { recursive: true });
    h.emulator.model.writeFile(account, '/blocked.md', '# Blocked', { clientModified: at });
    h.emulator.model.writeFile(account, '/next.md', '# Next', { clientModified: at });
    await h.syncChanges(account);

    const status = await h.status(account);
    expect(status).toMatchObject({ state: 'idle', pending: 0, lastError: null, setAside: 1 });
    expect(status.setAsideFiles).toEqual([{ path: '/blocked.md', kind: 'filesystem', message: expect.stringContaining('EISDIR'), at: expect.any(String) }]);
    expect((await readMirror(h.dataDir, account)).get('/next.md')?.content).toBe('# Next');
    expect((await h.engine.entries.list(account)).map((e) => e.path).sort()).toEqual(['/next.md', '/ok.md']);
    // Operators see it too, without an account id in the labels.
    expect(await (await h.api('/metrics')).text()).toMatch(/^mailroom_files_set_aside_total 1$/m);

    // The account keeps syncing: a later change arrives, the set-aside file is not tried again.
    const downloadsOfBlocked = h.emulator.stats.downloads(account, '/blocked.md');
    h.emulator.model.writeFile(account, '/later.md', '# Later', { clientModified: at });
    await h.syncChanges(account);
    expect((await readMirror(h.dataDir, account)).get('/later.md')?.content).toBe('# Later');
    expect(h.emulator.stats.downloads(account, '/blocked.md')).toBe(downloadsOfBlocked);
    expect((await h.status(account)).setAside).toBe(1);

    // The folder is cleared away and the post edited: the listing names it again, and it syncs.
    await rm(blocked, { recursive: true });
    h.emulator.model.writeFile(account, '/blocked.md', '# Unblocked', { clientModified: at });
    await h.syncChanges(account);
    expect((await h.status(account)).setAsideFiles).toEqual([]);
    await expectConverged(h, account);
  });

  it('a post that cannot become an entry (Markdown nested past what the renderer takes) is set aside in the mirror; the account goes idle; an edit brings its entry', async () => {
    const account = 'dbid:set-aside-post';
    await h.linkSynced(account, { '/ok.md': '# OK' }, at);
    // Three thousand nested quotes overflow marked's stack: on every retry alike, before this fix.
    const unrenderable = `${'>'.repeat(3000)} deep`;
    h.emulator.model.writeFile(account, '/deep.md', unrenderable, { clientModified: at });
    h.emulator.model.writeFile(account, '/next.md', '# Next', { clientModified: at });
    await h.syncChanges(account);

    const status = await h.status(account);
    expect(status).toMatchObject({ state: 'idle', pending: 0, lastError: null, setAside: 1 });
    expect(status.setAsideFiles).toEqual([{ path: '/deep.md', kind: 'post', message: expect.stringMatching(/^its Markdown could not be rendered \(Maximum call stack size exceeded\) \(the file is in the mirror/), at: expect.any(String) }]);
    const mirror = await readMirror(h.dataDir, account);
    expect(mirror.get('/deep.md')?.content).toBe(unrenderable);
    expect(mirror.get('/next.md')?.content).toBe('# Next');
    expect((await h.engine.entries.list(account)).map((e) => e.path).sort()).toEqual(['/next.md', '/ok.md']);

    h.emulator.model.writeFile(account, '/deep.md', '# Shallow now', { clientModified: at });
    await h.syncChanges(account);
    expect((await h.engine.entries.get(account, '/deep.md'))?.title).toBe('Shallow now');
    await expectConverged(h, account);
  });

  it('a post renamed onto a name whose post cannot be built keeps its entry, is set aside, and the account goes on past the rename', async () => {
    const account = 'dbid:set-aside-moved-post';
    // A .txt post renders as escaped text whatever it holds; as .md the same bytes cannot be rendered.
    await h.linkSynced(account, { '/notes.txt': `${'>'.repeat(3000)} deep`, '/q.html': `${'>'.repeat(3000)} deep` }, at);
    const before = await h.engine.entries.get(account, '/notes.txt');
    expect(before).not.toBeNull();
    const downloads = h.emulator.stats.downloads(account);
    h.emulator.model.move(account, '/notes.txt', '/notes.md');
    // A file that was no post becomes one that cannot be built: shown, not silently without an entry.
    h.emulator.model.move(account, '/q.html', '/q.md');
    await h.syncChanges(account);
    const status = await h.status(account);
    expect(status).toMatchObject({ state: 'idle', pending: 0, lastError: null, setAside: 2 });
    expect(status.setAsideFiles.map((f) => [f.path, f.kind])).toEqual([['/notes.md', 'post'], ['/q.md', 'post']]);
    expect(h.emulator.stats.downloads(account)).toBe(downloads); // built from the bytes in place
    const after = await h.engine.entries.get(account, '/notes.md');
    expect(after).toMatchObject({ id: before!.id, title: before!.title, html: before!.html });
    expect(await h.engine.entries.get(account, '/q.md')).toBeNull();
    expect((await readMirror(h.dataDir, account)).has('/notes.md')).toBe(true);
    // Changes after the rename's page still arrive.
    h.emulator.model.writeFile(account, '/later.md', '# Later', { clientModified: at });
    await h.syncChanges(account);
    expect((await h.engine.entries.get(account, '/later.md'))?.title).toBe('Later');
  });

  it('a post set aside is still a file of the mirror: a resync tries it again without a download, a deletion or an ignore rule removes it', async () => {
    const account = 'dbid:set-aside-post-indexed';
    const deep = `${'>'.repeat(3000)} deep`;
    await h.linkSynced(account, { '/drafts/a.md': deep, '/drafts/b.md': deep, '/ok.md': '# OK' }, at);
    expect((await h.status(account)).setAside).toBe(2);
    const downloads = h.emulator.stats.downloads(account);

    // A resync's full listing names them again: tried again from the bytes on disk, set aside again.
    expect((await h.api(`/accounts/${account}/resync`, { method: 'POST' })).status).toBeLessThan(300);
    await h.waitForIdle(account);
    await waitUntil(async () => (await h.status(account)).setAside === 2, 10_000, 'both set aside again');
    expect(h.emulator.stats.downloads(account)).toBe(downloads);

    // Deleted in Dropbox, then a full listing: the file leaves the mirror like any other.
    h.emulator.model.remove(account, '/drafts/a.md');
    expect((await h.api(`/accounts/${account}/resync`, { method: 'POST' })).status).toBeLessThan(300);
    await h.waitForIdle(account);
    await waitUntil(async () => !(await readMirror(h.dataDir, account)).has('/drafts/a.md'), 10_000, 'a.md removed');
    // An ignore rule that now covers the other removes it from the mirror too.
    expect((await h.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${account}`, ignore: ['drafts/**'] }) })).status).toBe(200);
    await h.waitForIdle(account);
    await waitUntil(async () => !(await readMirror(h.dataDir, account)).has('/drafts/b.md'), 10_000, 'b.md removed by the ignore rule');
    expect((await readMirror(h.dataDir, account)).get('/ok.md')?.content).toBe('# OK');
  });

  it('a file set aside is tried again by a resync, and by a deletion of its folder is forgotten', async () => {
    const account = 'dbid:set-aside-resync';
    await h.linkSynced(account, { '/a/ok.txt': 'ok' }, at);
    const blocked = join(mirrorFolder(h.dataDir, account), 'a', 'x.txt');
    await mkdir(join(blocked, 'inside'), { recursive: true });
    h.emulator.model.writeFile(account, '/a/x.txt', 'x', { clientModified: at });
    await h.syncChanges(account);
    expect((await h.status(account)).setAside).toBe(1);

    await rm(blocked, { recursive: true });
    const resync = await h.api(`/accounts/${account}/resync`, { method: 'POST' });
    expect(resync.status).toBeLessThan(300);
    await waitUntil(async () => (await readMirror(h.dataDir, account)).has('/a/x.txt'), 10_000, 'x.txt after the resync');
    await h.waitForIdle(account);
    await expectConverged(h, account);

    await mkdir(join(blocked + '2', 'inside'), { recursive: true });
    h.emulator.model.writeFile(account, '/a/x.txt2', 'x2', { clientModified: at });
    await h.syncChanges(account);
    expect((await h.status(account)).setAside).toBe(1);
    h.emulator.model.remove(account, '/a');
    await h.syncChanges(account);
    expect(await h.status(account)).toMatchObject({ setAside: 0, setAsideFiles: [] });
  });
});

describe('a download that keeps failing for another reason', () => {
  it('does not hold back the changes that arrive meanwhile: each retry lists them first', async () => {
    const account = 'dbid:set-aside-corrupt';
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/bad.md', '# Bad bytes', { clientModified: at });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/bad.md', corrupt: true, times: Infinity });
    expect((await h.linkAccount(account)).status).toBe(200);
    await waitUntil(async () => (await h.status(account)).state === 'backoff', 10_000, 'the backoff');

    h.emulator.model.writeFile(account, '/later.md', '# Later', { clientModified: at });
    await h.engine.notify([account]);
    await waitUntil(async () => (await readMirror(h.dataDir, account)).has('/later.md'), 15_000, 'later.md while bad.md keeps failing');
    expect((await h.engine.entries.list(account)).map((e) => e.path)).toEqual(['/later.md']);
    // Corrupt bytes may be the network's: not set aside, retried with a growing backoff.
    expect((await h.status(account)).setAside).toBe(0);

    h.emulator.faults.clear();
    await waitUntil(async () => (await readMirror(h.dataDir, account)).has('/bad.md'), 15_000, 'bad.md once the bytes are right');
    await h.waitForIdle(account);
    await expectConverged(h, account);
  });
});

describe('what is set aside and what is not', () => {
  it('only an error of a call that looks the path up, with a code of the path', () => {
    const error = (code: string, syscall: string) => Object.assign(new Error(`${code}: ${syscall}`), { code, syscall });
    expect(setAsideReason(error('EISDIR', 'rename'))).toMatchObject({ kind: 'filesystem' });
    expect(setAsideReason(error('ENAMETOOLONG', 'open'))).toMatchObject({ kind: 'filesystem' });
    // The same codes from a call on an open file fail every file alike; other codes are disk-wide.
    expect(setAsideReason(error('EINVAL', 'futime'))).toBeNull();
    expect(setAsideReason(error('EINVAL', 'fsync'))).toBeNull();
    expect(setAsideReason(error('ENOSPC', 'open'))).toBeNull();
    expect(setAsideReason(error('EACCES', 'open'))).toBeNull();
  });

  it('nothing, when the mirror folder itself is not a folder: the step backs off and keeps its queue', async () => {
    const account = 'dbid:set-aside-root';
    await h.linkSynced(account, { '/ok.md': '# OK' }, at);

    const root = mirrorFolder(h.dataDir, account);
    await rm(root, { recursive: true });
    await writeFile(root, 'a file where the mirror folder was');
    h.emulator.model.writeFile(account, '/new.md', '# New', { clientModified: at });
    await h.engine.notify([account]);
    await waitUntil(async () => (await h.status(account)).lastError?.kind === 'filesystem', 10_000, 'the failed download');
    expect(await h.status(account)).toMatchObject({ state: 'backoff', setAside: 0, pending: 1 });

    await rm(root);
    await mkdir(root);
    await waitUntil(async () => (await readMirror(h.dataDir, account)).has('/new.md'), 15_000, 'new.md once the folder is back');
    await h.waitForIdle(account);
    expect((await h.status(account)).setAside).toBe(0);
  });
});
