import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Metadata } from '../../src/dropbox-emulator/metadata.js';
import { expectConverged, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * Listings in the orders real Dropbox may give and the emulator never would on its own
 * (dropbox-api.md, sections 2.2 and 6: "do not assume the delete comes first"): the planner's unit
 * tests cover them, these carry them end to end, through the SDK, the listing, the apply step, the
 * downloads and the entries.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

const at = new Date('2024-08-01T10:00:00Z');
const tag = (metadata: Metadata) => `${metadata['.tag']} ${metadata.path_lower}`;

/** Makes `change` in Dropbox, rewrites what it journaled with `rewrite`, and syncs. */
async function syncRewritten(account: string, change: () => void, rewrite: (entries: readonly Metadata[]) => readonly Metadata[], expected: string[]): Promise<void> {
  const mark = h.emulator.model.journalPosition(account);
  change();
  h.emulator.model.rewriteJournal(account, mark, rewrite);
  expect(h.emulator.model.journalAfter(account, mark).map((entry) => tag(entry.metadata))).toEqual(expected);
  await h.syncChanges(account);
}

describe('listings in orders the emulator does not make on its own', () => {
  it('a move listed new path first, its old path\'s deletion after: the post keeps its entry id', async () => {
    const account = 'dbid:orders-move';
    await h.linkSynced(account, { '/drafts/post.md': '# Post', '/keep.md': '# Keep' }, at);
    const before = (await h.engine.entries.list(account)).find((e) => e.path === '/drafts/post.md')!;
    await syncRewritten(
      account,
      () => h.emulator.model.move(account, '/drafts/post.md', '/published/post.md'),
      (entries) => [...entries.filter((m) => m['.tag'] !== 'deleted'), ...entries.filter((m) => m['.tag'] === 'deleted')],
      ['folder /published', 'file /published/post.md', 'deleted /drafts/post.md'],
    );
    const after = (await h.engine.entries.list(account)).find((e) => e.path === '/published/post.md');
    expect(after).toMatchObject({ id: before.id, created: before.created });
    await expectConverged(h, account);
  });

  it('a file that became a folder, with no deletion listed in between', async () => {
    const account = 'dbid:orders-type-flip';
    await h.linkSynced(account, { '/notes': 'a file named notes', '/other.md': '# Other' }, at);
    await syncRewritten(
      account,
      () => {
        h.emulator.model.remove(account, '/notes');
        h.emulator.model.writeFile(account, '/notes/first.md', '# First', { clientModified: at });
      },
      (entries) => entries.filter((m) => m['.tag'] !== 'deleted'),
      ['folder /notes', 'file /notes/first.md'],
    );
    await expectConverged(h, account);
  });

  it('a file listed before the folders it is in', async () => {
    const account = 'dbid:orders-child-first';
    await h.linkSynced(account, { '/a.md': '# A' }, at);
    await syncRewritten(
      account,
      () => h.emulator.model.writeFile(account, '/new/deep/z.md', '# Z', { clientModified: at }),
      (entries) => [...entries].reverse(),
      ['file /new/deep/z.md', 'folder /new/deep', 'folder /new'],
    );
    await expectConverged(h, account);
  });
});
