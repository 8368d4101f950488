import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectConverged, expectedMirror, readMirror, startHarness, type Harness } from '../support/sync-harness.js';

let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

describe('linking an account', () => {
  it('mirrors the Dropbox folder and turns posts into entries, with mtimes from client_modified', async () => {
    const account = 'dbid:first-sync';
    h.emulator.model.addAccount(account, { accessToken: 'tok-first' });
    const model = h.emulator.model;
    model.writeFile(account, '/Posts/Hello World.md', '# Hello\n\nFirst post.', { clientModified: new Date('2024-03-01T10:00:00Z') });
    model.writeFile(account, '/Posts/notes.txt', 'just <text>', { clientModified: new Date('2023-01-02T03:04:05Z') });
    model.writeFile(account, '/images/photo.jpg', 'not really a jpeg');
    model.writeFile(account, '/.hidden/secret.md', '# no');
    model.writeFile(account, '/Ünïcode/Café.md', '# Café');

    const response = await h.linkAccount(account, { accessToken: 'tok-first' });
    expect(response.status).toBe(200);
    await h.waitForIdle(account);

    const mirror = await readMirror(h.dataDir, account);
    expect(mirror).toEqual(expectedMirror(h.emulator, account));
    expect(mirror.get('/Posts/Hello World.md')?.mtimeMs).toBe(Date.parse('2024-03-01T10:00:00Z'));
    expect(mirror.has('/.hidden/secret.md')).toBe(false);

    const entries = await (await h.api(`/accounts/${account}/entries`)).json() as { entries: { path: string; title: string; html: string }[] };
    expect(entries.entries.map((e) => [e.path, e.title])).toEqual([
      ['/Posts/Hello World.md', 'Hello'],
      ['/Posts/notes.txt', 'notes'],
      ['/Ünïcode/Café.md', 'Café'],
    ]);
    expect(entries.entries[1]!.html).toContain('just &lt;text&gt;');

    const status = await (await h.api(`/accounts/${account}`)).json() as Record<string, unknown>;
    expect(status).toMatchObject({ accountId: account, state: 'idle', dirty: false, pending: 0, lastError: null });
    expect(typeof status.lastSyncedAt).toBe('string');
  });
});

describe('a client_modified ahead of this host\'s clock', () => {
  it('is the mtime on disk all the same (an uploader whose clock runs fast): the mirror says what Dropbox says', async () => {
    const account = 'dbid:future-mtime';
    const ahead = new Date(Date.now() + 366 * 24 * 3600 * 1000);
    ahead.setMilliseconds(0); // Dropbox's timestamps are whole seconds
    await h.linkSynced(account, { '/ahead.md': '# Ahead' }, ahead);
    expect((await readMirror(h.dataDir, account)).get('/ahead.md')?.mtimeMs).toBe(ahead.getTime());
    await expectConverged(h, account);
  });
});

describe('a new revision with the same bytes', () => {
  it('and another client_modified moves the mtime on disk, without a download', async () => {
    const account = 'dbid:same-bytes-new-mtime';
    await h.linkSynced(account, { '/photo.jpg': 'same bytes' }, new Date('2024-05-01T12:00:00Z'));
    const downloads = h.emulator.stats.downloads(account, '/photo.jpg');

    const restoredAt = new Date('2024-06-01T08:30:00Z');
    h.emulator.model.writeFile(account, '/photo.jpg', 'same bytes', { clientModified: restoredAt });
    await h.syncChanges(account);

    expect((await readMirror(h.dataDir, account)).get('/photo.jpg')?.mtimeMs).toBe(restoredAt.getTime());
    expect(h.emulator.stats.downloads(account, '/photo.jpg')).toBe(downloads);
    await expectConverged(h, account);
  });
});
