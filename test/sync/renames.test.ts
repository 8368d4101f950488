import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SyncStore } from '../../src/sync/sync-store.js';
import { expectConverged, expectedMirror, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * What a user does with names in Dropbox, applied in one batch (all before the engine lists):
 * each post keeps its entry (id and created) wherever its file goes, and the mirror ends as the
 * Dropbox folder is, with no second copy under an old name.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

const at = new Date('2024-05-01T12:00:00Z');

const linked = (account: string, files: Record<string, string>) => h.linkSynced(account, files, at);

const entryAt = async (account: string, path: string) => (await h.engine.entries.list(account)).find((e) => e.path === path);

/**
 * Notifies the engine of what is in Dropbox (a step of that run is made to fail by the test), waits
 * for the backoff, makes `change`, then re-links, which cuts the backoff short (to fetching), and
 * waits until `path` is in the mirror and the account is idle.
 */
async function relinkDuringBackoff(account: string, change: () => void, path: string): Promise<void> {
  await h.engine.notify([account]);
  await waitUntil(async () => (await h.status(account)).state === 'backoff', 10_000, 'the backoff after the failed step');
  change();
  expect((await h.linkAccount(account)).status).toBe(200);
  await waitUntil(async () => (await readMirror(h.dataDir, account)).has(path), 10_000, `${path} after the re-link`);
  await h.waitForIdle(account);
}

/** Two synced posts, /a.md and /b.md, swapped in Dropbox through a temporary name (not synced yet); their entries before. */
async function swapTwoPosts(account: string) {
  await linked(account, { '/a.md': '# Alpha', '/b.md': '# Beta' });
  const alpha = await entryAt(account, '/a.md');
  const beta = await entryAt(account, '/b.md');
  h.emulator.model.move(account, '/a.md', '/tmp.md');
  h.emulator.model.move(account, '/b.md', '/a.md');
  h.emulator.model.move(account, '/tmp.md', '/b.md');
  return { alpha, beta };
}

describe('renames within one batch keep the entry', () => {
  it('delete b.md, then rename a.md to b.md (one batch): the moved post keeps its id and created', async () => {
    const account = 'dbid:renames-replace';
    await linked(account, { '/a.md': '# A post', '/b.md': '# B post' });
    const before = await entryAt(account, '/a.md');
    expect(before).toBeDefined();

    h.emulator.model.remove(account, '/b.md');
    h.emulator.model.move(account, '/a.md', '/b.md');
    await h.syncChanges(account);

    const after = await entryAt(account, '/b.md');
    expect(after?.title).toBe('A post');
    expect(after?.id).toBe(before!.id);
    expect(after?.created).toBe(before!.created);
    await expectConverged(h, account);
  });

  it('rename a.md to tmp.md and back to a.md (one batch): the post keeps its id', async () => {
    const account = 'dbid:renames-roundtrip';
    await linked(account, { '/posts/hello.md': '# Hello' });
    const before = await entryAt(account, '/posts/hello.md');

    // e.g. a case-only rename done the portable way (via a temporary name)
    h.emulator.model.move(account, '/posts/hello.md', '/posts/tmp.md');
    h.emulator.model.move(account, '/posts/tmp.md', '/posts/Hello.md');
    await h.syncChanges(account);

    const after = await entryAt(account, '/posts/Hello.md');
    expect(after).toBeDefined();
    expect(after?.id).toBe(before!.id);
    expect(after?.created).toBe(before!.created);
    await expectConverged(h, account);
  });

  it('a post moved into a folder deleted and re-created in the same batch keeps its id', async () => {
    const account = 'dbid:renames-into-recreated';
    await linked(account, { '/a.md': '# A', '/Old/keep.txt': 'x' });
    const before = await entryAt(account, '/a.md');

    h.emulator.model.remove(account, '/Old');
    h.emulator.model.mkdir(account, '/Old');
    h.emulator.model.move(account, '/a.md', '/Old/a.md');
    await h.syncChanges(account);

    const after = await entryAt(account, '/Old/a.md');
    expect(after?.id).toBe(before!.id);
    await expectConverged(h, account);
  });
  it('a folder renamed away and back (one batch): its posts keep their ids and created, and are not downloaded again', async () => {
    const account = 'dbid:renames-folder-roundtrip';
    await linked(account, { '/posts/hello.md': '# Hello', '/posts/deep/world.md': '# World' });
    const hello = await entryAt(account, '/posts/hello.md');
    const world = await entryAt(account, '/posts/deep/world.md');
    const downloads = () => h.emulator.stats.downloads(account, '/posts/hello.md') + h.emulator.stats.downloads(account, '/posts/deep/world.md');
    const downloadsBefore = downloads();

    h.emulator.model.move(account, '/posts', '/archive');
    h.emulator.model.move(account, '/archive', '/posts');
    await h.syncChanges(account);

    expect(await entryAt(account, '/posts/hello.md')).toMatchObject({ id: hello!.id, created: hello!.created });
    expect(await entryAt(account, '/posts/deep/world.md')).toMatchObject({ id: world!.id, created: world!.created });
    expect(downloads()).toBe(downloadsBefore);
    await expectConverged(h, account);
  });
});

describe('a swap of two posts within one batch', () => {
  it('swapping two posts by name (a -> tmp, b -> a, tmp -> b) keeps both ids with their content', async () => {
    const account = 'dbid:renames-swap';
    const { alpha, beta } = await swapTwoPosts(account);
    await h.syncChanges(account);
    const entries = await h.engine.entries.list(account);
    expect(entries.map((e) => [e.path, e.title, e.id])).toEqual([['/a.md', 'Beta', beta!.id], ['/b.md', 'Alpha', alpha!.id]]);
    await expectConverged(h, account);
  });
});

describe('a rename that only changes the case, on a case-sensitive disk', () => {
  it('a file renamed only in case and then edited leaves no stale copy under its old name', async () => {
    const account = 'dbid:renames-case';
    await linked(account, { '/notes/readme.txt': 'version 1' });

    h.emulator.model.move(account, '/notes/readme.txt', '/notes/README.txt'); // not reported by continue
    h.emulator.model.writeFile(account, '/notes/README.txt', 'version 2', { clientModified: at });
    await h.syncChanges(account);

    const mirror = await readMirror(h.dataDir, account);
    expect([...mirror.keys()].sort()).toEqual(['/notes/README.txt']);
    expect(mirror).toEqual(expectedMirror(h.emulator, account));

    // and deleting it in Dropbox leaves nothing behind
    h.emulator.model.remove(account, '/notes/README.txt');
    await h.syncChanges(account);
    expect([...(await readMirror(h.dataDir, account)).keys()]).toEqual([]);
    await expectConverged(h, account);
  });

  it('a file renamed only in case, edited, then deleted in Dropbox is gone from the mirror', async () => {
    const account = 'dbid:renames-case-delete';
    await linked(account, { '/notes/readme.txt': 'version 1' });
    h.emulator.model.move(account, '/notes/readme.txt', '/notes/README.txt');
    h.emulator.model.writeFile(account, '/notes/README.txt', 'version 2', { clientModified: at });
    await h.syncChanges(account);
    h.emulator.model.remove(account, '/notes/README.txt');
    await h.syncChanges(account);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));
    await expectConverged(h, account);
  });
});

describe('a folder renamed only in case through a temporary name (one batch), on a case-sensitive disk', () => {
  it('takes the new case, children and subfolders with it, and its posts keep their ids', async () => {
    const account = 'dbid:renames-folder-case';
    await linked(account, { '/posts/hello.md': '# Hello', '/posts/sub/deep.txt': 'deep' });
    const hello = await entryAt(account, '/posts/hello.md');

    h.emulator.model.move(account, '/posts', '/tmp');
    h.emulator.model.move(account, '/tmp', '/Posts');
    await h.syncChanges(account);

    expect([...(await readMirror(h.dataDir, account)).keys()].sort()).toEqual(['/Posts/hello.md', '/Posts/sub/deep.txt']);
    expect(await entryAt(account, '/Posts/hello.md')).toMatchObject({ id: hello!.id, created: hello!.created });
    await expectConverged(h, account);

    // and what is listed in it later goes into the folder of the new case
    h.emulator.model.writeFile(account, '/Posts/sub/more.txt', 'more', { clientModified: at });
    await h.syncChanges(account);
    await expectConverged(h, account);
  });
});

describe('a path_display whose parent folders have another casing than the folders, on a case-sensitive disk', () => {
  it('puts the file in the folder the mirror has (Dropbox only guarantees the last component\'s casing)', async () => {
    const account = 'dbid:renames-parent-casing';
    await linked(account, { '/Photos/Trip/a.jpg': 'a' });
    // Listed as /photos/TRIP/B.md, though the folders are /Photos/Trip.
    h.emulator.model.writeFile(account, '/photos/TRIP/B.md', '# B', { clientModified: at, parentsAsGiven: true });
    expect(h.emulator.model.listTree(account).find((i) => i.pathLower === '/photos/trip/b.md')?.pathDisplay).toBe('/photos/TRIP/B.md');
    await h.syncChanges(account);

    const mirror = await readMirror(h.dataDir, account);
    expect([...mirror.keys()].sort()).toEqual(['/Photos/Trip/B.md', '/Photos/Trip/a.jpg']);
    expect(mirror.get('/Photos/Trip/B.md')?.content).toBe('# B');
    expect((await entryAt(account, '/Photos/Trip/B.md'))?.title).toBe('B'); // the entry names the path on disk
  });
});

describe('a file name near the limit of 255 bytes', () => {
  it('of 80 CJK characters (240 bytes in UTF-8) syncs', async () => {
    const account = 'dbid:renames-long-name';
    const longName = `/${'字'.repeat(80)}.md`;
    await linked(account, { [longName]: '# Long', '/ok.md': '# OK' });
    await expectConverged(h, account);
    expect((await h.engine.entries.list(account)).map((e) => e.title).sort()).toEqual(['Long', 'OK']);
  });
});

describe('an apply cut short while it moved files (a step failed), then replayed', () => {
  // The commit of the account's next batch fails once, as a Redis timeout or a lost lease would
  // fail it: by then the files and entries are at their new paths, and the actor applies the same
  // batch again after its backoff.
  const commitPlan = SyncStore.prototype.commitPlan;
  let failFor: string | null = null;
  beforeAll(() => {
    SyncStore.prototype.commitPlan = async function (this: SyncStore, ...args: Parameters<typeof commitPlan>) {
      if (args[0] === failFor) {
        failFor = null;
        throw new Error('Command timed out');
      }
      return commitPlan.apply(this, args);
    };
  });
  afterEach(() => { failFor = null; });
  afterAll(() => { SyncStore.prototype.commitPlan = commitPlan; });

  it('a swap of two posts keeps the files and the ids where they went', async () => {
    const account = 'dbid:replay-swap';
    const { alpha, beta } = await swapTwoPosts(account);
    failFor = account;
    await h.syncChanges(account);
    expect(failFor).toBeNull(); // the commit did fail once
    const entries = await h.engine.entries.list(account);
    expect(entries.map((e) => [e.path, e.title, e.id])).toEqual([['/a.md', 'Beta', beta!.id], ['/b.md', 'Alpha', alpha!.id]]);
    await expectConverged(h, account);
  });

  it('a re-link while it backs off lists nothing before the replay: the swap stays, the later change comes after', async () => {
    const account = 'dbid:replay-swap-relink';
    const { alpha, beta } = await swapTwoPosts(account);
    failFor = account;
    await relinkDuringBackoff(account, () => h.emulator.model.writeFile(account, '/c.md', '# Gamma'), '/c.md');
    const entries = await h.engine.entries.list(account);
    expect(entries.filter((e) => e.path !== '/c.md').map((e) => [e.path, e.title, e.id])).toEqual([['/a.md', 'Beta', beta!.id], ['/b.md', 'Alpha', alpha!.id]]);
    await expectConverged(h, account);
    expect(await h.redis.hexists(`mr:{${account}}:mailbox`, 'moves')).toBe(0);
  });

  it('cut short before its moves were placed, then a later move listed: the entry is neither lost nor left parked', async () => {
    const account = 'dbid:replay-staging';
    await linked(account, { '/a.md': '# A post' });
    const post = await entryAt(account, '/a.md');
    // The record of the moves being placed fails once: files and entries are aside, nothing placed.
    const markMoves = SyncStore.prototype.markMoves;
    let failed = false;
    SyncStore.prototype.markMoves = async function (this: SyncStore, ...args: Parameters<typeof markMoves>) {
      if (args[0] === account && args[1] === 'placed' && !failed) {
        failed = true;
        throw new Error('Command timed out');
      }
      return markMoves.apply(this, args);
    };
    try {
      h.emulator.model.move(account, '/a.md', '/b.md');
      // Moved once more during the backoff: the first page is applied before this is listed.
      await relinkDuringBackoff(account, () => h.emulator.model.move(account, '/b.md', '/c.md'), '/c.md');
    } finally {
      SyncStore.prototype.markMoves = markMoves;
    }
    expect(failed).toBe(true);
    expect(await h.engine.entries.list(account)).toEqual([expect.objectContaining({ path: '/c.md', id: post!.id, created: post!.created })]);
    await expectConverged(h, account);
  });

  it('ignore rules changed by a re-link before the replay: the file moved to a newly ignored path leaves the mirror and the blog', async () => {
    const account = 'dbid:replay-rules-change';
    await linked(account, { '/a.md': '# A post', '/keep.md': '# Keep' });
    h.emulator.model.move(account, '/a.md', '/b.md');
    failFor = account;
    await h.engine.notify([account]);
    await waitUntil(async () => (await h.status(account)).state === 'backoff', 10_000, 'the backoff after the failed commit');
    expect((await h.linkAccount(account, { accessToken: `token-${account}`, ignore: ['b.md'] })).status).toBe(200);
    await h.waitForIdle(account);
    // and once more, as the next webhook would
    await h.syncChanges(account);

    expect([...(await readMirror(h.dataDir, account)).keys()].sort()).toEqual(['/keep.md']);
    expect((await h.engine.entries.list(account)).map((e) => e.path)).toEqual(['/keep.md']);
  });

  it('a file moved onto a path deleted in the same batch stays in place, a post with its id', async () => {
    const account = 'dbid:replay-replace';
    await linked(account, { '/a.bin': 'AAA', '/b.bin': 'BBB', '/a.md': '# A post', '/b.md': '# B post' });
    const post = await entryAt(account, '/a.md');
    for (const ext of ['bin', 'md']) {
      h.emulator.model.remove(account, `/b.${ext}`);
      h.emulator.model.move(account, `/a.${ext}`, `/b.${ext}`);
    }
    failFor = account;
    await h.syncChanges(account);
    expect(failFor).toBeNull();
    expect((await readMirror(h.dataDir, account)).get('/b.bin')?.content).toBe('AAA');
    expect(await entryAt(account, '/b.md')).toMatchObject({ id: post!.id, created: post!.created, title: 'A post' });
    await expectConverged(h, account);
  });
});
