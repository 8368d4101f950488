import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planChanges, UNLISTED_ID, type FieldOps, type Plan } from '../src/sync/plan-changes.js';
import type { DownloadItem, ListedEntry, ListedFile, ListedFolder, ListedDeletion, LocalRecord } from '../src/sync/records.js';
import { createIgnoreRule, isUnder, localPathFor, UnsafePathError } from '../src/sync/paths.js';

const ROOT = '/data/acct';
const nameOf = (path: string) => path.slice(path.lastIndexOf('/') + 1);
const depth = (path: string) => path.split('/').length;

// ---------- listed entries and local records ----------

interface FileOpts { id?: string; rev?: string; hash?: string; size?: number; downloadable?: boolean }

function file(display: string, opts: FileOpts = {}): ListedFile {
  const pathLower = display.toLowerCase();
  return {
    tag: 'file', pathLower, pathDisplay: display, name: nameOf(display),
    id: opts.id ?? `id:${pathLower}`, rev: opts.rev ?? '0000000001', contentHash: opts.hash ?? `hash:${pathLower}`,
    size: opts.size ?? 10, clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z',
    isDownloadable: opts.downloadable ?? true,
  };
}
function folder(display: string, id?: string): ListedFolder {
  const pathLower = display.toLowerCase();
  return { tag: 'folder', pathLower, pathDisplay: display, name: nameOf(display), id: id ?? `id:${pathLower}/` };
}
function deleted(display: string): ListedDeletion {
  return { tag: 'deleted', pathLower: display.toLowerCase(), pathDisplay: display, name: nameOf(display) };
}
function item(entry: ListedFile): DownloadItem {
  const { tag: _tag, isDownloadable: _d, name: _name, ...rest } = entry;
  return rest;
}
function onDisk(entry: ListedFile | ListedFolder): LocalRecord {
  return entry.tag === 'file'
    ? { kind: 'file', ...item(entry) }
    : { kind: 'folder', pathLower: entry.pathLower, pathDisplay: entry.pathDisplay, id: entry.id };
}

// ---------- the engine's index, and committing a plan to it as changes-commit.lua does ----------

interface Index {
  files: Map<string, LocalRecord>;
  fileIds: Map<string, string>;
  ignored: Map<string, DownloadItem>;
  queue: Map<string, DownloadItem>;
}

function indexOf(local: (ListedFile | ListedFolder)[], extra: { ignored?: ListedFile[]; queue?: ListedFile[] } = {}): Index {
  const files = new Map(local.map((entry) => [entry.pathLower, onDisk(entry)] as const));
  return {
    files,
    fileIds: new Map([...files.values()].map((record) => [record.id, record.pathLower] as const)),
    ignored: new Map((extra.ignored ?? []).map((entry) => [entry.pathLower, item(entry)] as const)),
    queue: new Map((extra.queue ?? []).map((entry) => [entry.pathLower, item(entry)] as const)),
  };
}

const emptyIndex = (): Index => indexOf([]);

function unsafeReason(display: string): string | null {
  try {
    localPathFor(ROOT, display);
    return null;
  } catch (error) {
    if (error instanceof UnsafePathError) return error.reason;
    throw error;
  }
}

interface PlanOpts { full?: boolean; ignore?: string[]; rulesChanged?: boolean }

function plan(index: Index, entries: ListedEntry[], opts: PlanOpts = {}): Plan {
  return planChanges({
    entries, ...index,
    isIgnored: createIgnoreRule(opts.ignore ?? []),
    unsafeReason,
    full: opts.full ?? false,
    rulesChanged: opts.rulesChanged ?? false,
  });
}

/** Deletes before sets, per hash: changes-commit.lua. */
function applyOps<T>(map: Map<string, T>, ops: FieldOps<T>): void {
  for (const field of ops.del) map.delete(field);
  for (const [field, value] of ops.set) map.set(field, value);
}
function commit(index: Index, result: Plan): Index {
  const next: Index = { files: new Map(index.files), fileIds: new Map(index.fileIds), ignored: new Map(index.ignored), queue: new Map(index.queue) };
  applyOps(next.files, result.index.files);
  applyOps(next.fileIds, result.index.fileIds);
  applyOps(next.ignored, result.index.ignored);
  applyOps(next.queue, result.index.queue);
  return next;
}

const paths = <T extends { pathLower: string }>(list: readonly T[]) => list.map((x) => x.pathLower);
const sorted = (list: Iterable<string>) => [...list].sort();

// ---------- behaviour ----------

describe('planChanges: a server that lists no content_hash', () => {
  // Dropbox always lists one; a compatible server may not, and two empty hashes say nothing.
  const noHash = (display: string, rev: string, id?: string) => file(display, { rev, hash: '', ...(id ? { id } : {}) });

  it('an edited file (a new rev) is queued; the same rev listed again is not', () => {
    const index = indexOf([noHash('/a.md', '01')]);
    const edited = noHash('/a.md', '02');
    expect(plan(index, [edited]).downloads).toEqual([item(edited)]);
    expect(plan(index, [noHash('/a.md', '01')]).downloads).toEqual([]);
  });

  it('a moved file keeps its bytes when its rev did not change, and is downloaded when it did', () => {
    const index = indexOf([noHash('/a.md', '01', 'id:a')]);
    const moved = plan(index, [deleted('/a.md'), noHash('/b.md', '01', 'id:a')]);
    expect(moved.moves).toEqual([expect.objectContaining({ download: false })]);
    expect(moved.downloads).toEqual([]);
    const movedAndEdited = plan(index, [deleted('/a.md'), noHash('/b.md', '02', 'id:a')]);
    expect(movedAndEdited.moves).toEqual([expect.objectContaining({ download: true })]);
  });
});

describe('planChanges: first sync and edits', () => {
  it('first full listing creates folders parents first and queues every file', () => {
    const entries = [
      folder('/Posts/2024'), folder('/Posts'), file('/Posts/2024/Hello.md'), file('/Posts/Intro.md'), file('/readme.txt'),
    ];
    const result = plan(emptyIndex(), entries, { full: true });
    expect(paths(result.folders)).toEqual(['/posts', '/posts/2024']);
    expect(result.folders[0]).toMatchObject({ pathDisplay: '/Posts', id: 'id:/posts/' });
    expect(sorted(paths(result.downloads))).toEqual(['/posts/2024/hello.md', '/posts/intro.md', '/readme.txt']);
    expect(result.removals).toEqual([]);
    expect(result.moves).toEqual([]);
    const after = commit(emptyIndex(), result);
    expect(sorted(after.queue.keys())).toEqual(['/posts/2024/hello.md', '/posts/intro.md', '/readme.txt']);
    expect(after.queue.get('/posts/intro.md')).toEqual(item(file('/Posts/Intro.md')));
    expect(sorted(after.files.keys())).toEqual(['/posts', '/posts/2024']);
    expect(after.fileIds.get('id:/posts/')).toBe('/posts');
  });

  it('an edited file (new rev and content) is queued', () => {
    const index = indexOf([file('/a.md', { rev: '01', hash: 'h1' })]);
    const edited = file('/a.md', { rev: '02', hash: 'h2' });
    const result = plan(index, [edited]);
    expect(result.downloads).toEqual([item(edited)]);
    expect(result.removals).toEqual([]);
    expect(commit(index, result).queue.get('/a.md')).toEqual(item(edited));
  });

  it('a new rev with the same content is not downloaded, but the index learns the rev', () => {
    const index = indexOf([file('/a.md', { rev: '01', hash: 'h1' })]);
    const result = plan(index, [file('/a.md', { rev: '02', hash: 'h1' })]);
    expect(result.downloads).toEqual([]);
    const after = commit(index, result);
    expect(after.files.get('/a.md')).toMatchObject({ kind: 'file', rev: '02', contentHash: 'h1' });
    expect(after.queue.size).toBe(0);
  });

  it('a new rev with the same content but another client_modified is queued, so the mtime on disk follows', () => {
    const index = indexOf([file('/a.md', { rev: '01', hash: 'h1' })]);
    const listed = { ...file('/a.md', { rev: '02', hash: 'h1' }), clientModified: '2024-06-01T08:30:00Z' };
    const result = plan(index, [listed]);
    expect(result.downloads.map((item) => [item.pathLower, item.clientModified])).toEqual([['/a.md', '2024-06-01T08:30:00Z']]);
    // The index keeps saying what is on disk until the downloader has set the time.
    expect(result.index.files).toEqual({ set: [], del: [] });
  });

  it('a file reverted to what is on disk drops the queued download of the newer rev', () => {
    const index = indexOf([file('/a.md', { rev: '01', hash: 'h1' })], { queue: [file('/a.md', { rev: '02', hash: 'h2' })] });
    const result = plan(index, [file('/a.md', { rev: '03', hash: 'h1' })]);
    expect(result.downloads).toEqual([]);
    const after = commit(index, result);
    expect(after.queue.size).toBe(0);
    expect(after.files.get('/a.md')).toMatchObject({ rev: '03' });
  });

  it('an unchanged file listed again changes nothing', () => {
    const a = file('/a.md');
    const result = plan(indexOf([a]), [a]);
    expect(result).toMatchObject({ removals: [], moves: [], folders: [], downloads: [], refused: [] });
    expect(result.index.files).toEqual({ set: [], del: [] });
  });
});

describe('planChanges: deletions', () => {
  const tree = [
    folder('/a'), file('/a/x.md'), folder('/a/sub'), file('/a/sub/y.md'), file('/ab'), folder('/abc'), file('/abc/z.md'),
  ];

  it('deleting a file removes it from disk and index', () => {
    const index = indexOf(tree);
    const result = plan(index, [deleted('/a/x.md')]);
    expect(result.removals).toEqual(['/a/x.md']);
    const after = commit(index, result);
    expect(after.files.has('/a/x.md')).toBe(false);
    expect(after.fileIds.has('id:/a/x.md')).toBe(false);
    expect(after.files.has('/a/sub/y.md')).toBe(true);
  });

  it('deleting a folder removes its children and queued downloads under it, not /ab or /abc', () => {
    const index = indexOf(tree, { queue: [file('/a/sub/q.md'), file('/ab2.md'), file('/abc/w.md')] });
    const result = plan(index, [deleted('/a')]);
    expect(result.removals).toEqual(['/a']);
    const after = commit(index, result);
    expect(sorted(after.files.keys())).toEqual(['/ab', '/abc', '/abc/z.md']);
    expect(sorted(after.fileIds.values())).toEqual(['/ab', '/abc', '/abc/z.md']);
    expect(sorted(after.queue.keys())).toEqual(['/ab2.md', '/abc/w.md']);
  });

  it('a folder deleted and re-created in the same batch loses its old children', () => {
    const index = indexOf(tree);
    const result = plan(index, [deleted('/a'), folder('/a', 'id:new-a'), file('/a/new.md')]);
    expect(result.removals).toEqual(['/a']);
    expect(paths(result.folders)).toEqual(['/a']);
    expect(paths(result.downloads)).toEqual(['/a/new.md']);
    const after = commit(index, result);
    expect(sorted(after.files.keys())).toEqual(['/a', '/ab', '/abc', '/abc/z.md']);
    expect(after.files.get('/a')?.id).toBe('id:new-a');
    expect(after.fileIds.get('id:new-a')).toBe('/a');
    expect(after.fileIds.has('id:/a/')).toBe(false);
  });

  it('a child re-listed after its folder was deleted and re-created comes back: moved aside and back (its id), or downloaded (a new id)', () => {
    const index = indexOf(tree);
    const same = plan(index, [deleted('/a'), folder('/a'), file('/a/x.md')]);
    expect(same.removals).toEqual(['/a']);
    expect(same.moves.map((m) => [m.from.pathLower, m.to.pathLower])).toEqual([['/a/x.md', '/a/x.md']]);
    expect(same.downloads).toEqual([]);
    expect(commit(index, same).files.has('/a/x.md')).toBe(true);
    const other = plan(index, [deleted('/a'), folder('/a'), file('/a/x.md', { id: 'id:new-x' })]);
    expect(other.moves).toEqual([]);
    expect(paths(other.downloads)).toEqual(['/a/x.md']);
  });

  it('entries listed and then deleted in the same batch queue nothing', () => {
    const result = plan(emptyIndex(), [folder('/n'), file('/n/x.md'), file('/b.md'), file('/.hidden'), deleted('/n'), deleted('/b.md'), deleted('/.hidden')]);
    expect(result.downloads).toEqual([]);
    expect(result.folders).toEqual([]);
    const after = commit(emptyIndex(), result);
    expect(after.queue.size + after.files.size + after.ignored.size).toBe(0);
  });

  it('a deletion of something never synced is harmless', () => {
    const result = plan(emptyIndex(), [deleted('/never')]);
    expect(commit(emptyIndex(), result)).toEqual(emptyIndex());
  });
});

describe('planChanges: kind changes', () => {
  it('a file replaced by a folder', () => {
    const index = indexOf([file('/a')]);
    const result = plan(index, [folder('/a'), file('/a/x.md')]);
    expect(result.removals).toEqual(['/a']);
    expect(paths(result.folders)).toEqual(['/a']);
    expect(paths(result.downloads)).toEqual(['/a/x.md']);
    expect(commit(index, result).files.get('/a')?.kind).toBe('folder');
  });

  it('a folder replaced by a file takes its children with it', () => {
    const index = indexOf([folder('/a'), file('/a/x.md'), folder('/a/sub')]);
    const result = plan(index, [file('/a')]);
    expect(result.removals).toEqual(['/a']);
    expect(paths(result.downloads)).toEqual(['/a']);
    const after = commit(index, result);
    expect([...after.files.keys()]).toEqual([]);
    expect([...after.queue.keys()]).toEqual(['/a']);
  });

  it('a folder replaced by a file and then by a folder again still loses the old children', () => {
    const index = indexOf([folder('/a'), file('/a/x.md')]);
    const result = plan(index, [file('/a'), folder('/a', 'id:a2'), file('/a/new.md')]);
    expect(result.removals).toEqual(['/a']); // removed whole, then made again
    expect(paths(result.folders)).toEqual(['/a']);
    const after = commit(index, result);
    expect(sorted(after.files.keys())).toEqual(['/a']);
    expect([...after.queue.keys()]).toEqual(['/a/new.md']);
  });

  it('a file listed inside a folder that a later file replaces is not downloaded', () => {
    const index = indexOf([folder('/a')]);
    const result = plan(index, [file('/a/x.md'), file('/a')]);
    expect(paths(result.downloads)).toEqual(['/a']);
    expect(result.removals).toEqual(['/a']);
  });

  it('a queued file replaced by a folder is no longer queued', () => {
    const index = indexOf([], { queue: [file('/a')] });
    const result = plan(index, [folder('/a')]);
    const after = commit(index, result);
    expect(after.queue.size).toBe(0);
    expect(after.files.get('/a')?.kind).toBe('folder');
  });
});

describe('planChanges: moves', () => {
  const a = file('/Notes/a.md', { id: 'id:A', rev: '01', hash: 'hA' });
  const base = () => indexOf([folder('/Notes'), a, folder('/Old'), file('/Old/keep.md')]);

  it('a moved file is moved locally, not downloaded, whatever order the entries come in', () => {
    const moved = file('/Notes/B.md', { id: 'id:A', rev: '02', hash: 'hA' });
    for (const entries of [[deleted('/Notes/a.md'), moved], [moved, deleted('/Notes/a.md')]]) {
      const result = plan(base(), entries);
      expect(result.moves).toEqual([{ from: onDisk(a), to: item(moved), download: false }]);
      expect(result.downloads).toEqual([]);
      expect(result.removals).toEqual(['/notes/a.md']);
      const after = commit(base(), result);
      expect(after.files.has('/notes/a.md')).toBe(false);
      expect(after.files.get('/notes/b.md')).toEqual(onDisk(moved));
      expect(after.fileIds.get('id:A')).toBe('/notes/b.md');
      expect(after.queue.size).toBe(0);
    }
  });

  it('a file listed under another case of its name is moved to it (and downloaded only if edited)', () => {
    // Dropbox does not report a case-only rename; the file's next listing shows the new name.
    for (const [hash, download] of [['hA', false], ['hZ', true]] as const) {
      const renamed = file('/Notes/A.md', { id: 'id:A', rev: '02', hash });
      const result = plan(base(), [renamed]);
      expect(result.moves).toEqual([{ from: onDisk(a), to: item(renamed), download }]);
      expect(result.removals).toEqual([]);
      expect(result.downloads).toEqual(download ? [item(renamed)] : []);
      expect(commit(base(), result).files.get('/notes/a.md')).toMatchObject({ pathDisplay: '/Notes/A.md' });
    }
  });

  it('a file deleted and listed again at its path with its id is not removed: it stays, or moves to its new case', () => {
    for (const name of ['/Notes/a.md', '/Notes/A.md']) {
      const back = file(name, { id: 'id:A', rev: '03', hash: 'hA' });
      const result = plan(base(), [deleted('/Notes/a.md'), deleted('/Notes/tmp.md'), back]);
      expect(result.removals).toEqual(['/notes/tmp.md']);
      expect(result.downloads).toEqual([]);
      expect(result.moves).toEqual(name === '/Notes/a.md' ? [] : [{ from: onDisk(a), to: item(back), download: false }]);
      expect(commit(base(), result).files.get('/notes/a.md')).toMatchObject({ rev: '03', pathDisplay: name });
    }
    // Another file (another id) at the path is a new file: the old one goes.
    const other = file('/Notes/a.md', { id: 'id:other', hash: 'hA' });
    expect(plan(base(), [deleted('/Notes/a.md'), other]).removals).toEqual(['/notes/a.md']);
  });

  it('a moved and edited file is moved and then downloaded', () => {
    const moved = file('/Notes/b.md', { id: 'id:A', rev: '02', hash: 'hB' });
    const result = plan(base(), [deleted('/Notes/a.md'), moved]);
    expect(result.moves).toEqual([{ from: onDisk(a), to: item(moved), download: true }]);
    expect(result.downloads).toEqual([item(moved)]);
    const after = commit(base(), result);
    expect(after.queue.get('/notes/b.md')).toEqual(item(moved));
    // Until the download lands, the index says what is on disk: the old content at the new path.
    expect(after.files.get('/notes/b.md')).toMatchObject({ contentHash: 'hA', rev: '01', pathLower: '/notes/b.md' });
    expect(after.files.has('/notes/a.md')).toBe(false);
  });

  it('a moved and edited file still waiting for its download is removed by a full listing that omits it', () => {
    const moved = file('/Notes/b.md', { id: 'id:A', rev: '02', hash: 'hB' });
    const afterMove = commit(base(), plan(base(), [deleted('/Notes/a.md'), moved]));
    const result = plan(afterMove, [folder('/Notes'), folder('/Old'), file('/Old/keep.md')], { full: true });
    expect(result.removals).toEqual(['/notes/b.md']); // on disk since the move: must not be left behind
    expect(commit(afterMove, result).queue.has('/notes/b.md')).toBe(false);
  });

  it('a full listing that omits a queued file the index never had removes its path too', () => {
    // Its bytes may be on disk all the same: renamed into place, then a crash took the step's
    // completion (the index never heard of it); nothing after a full listing would remove them.
    const queued = file('/posts/orphan.md');
    const index = indexOf([folder('/posts'), file('/posts/kept.md')], { queue: [queued, file('/posts/kept2.md')] });
    const result = plan(index, [folder('/posts'), file('/posts/kept.md'), file('/posts/kept2.md')], { full: true });
    expect(result.removals).toEqual(['/posts/orphan.md']);
    expect(commit(index, result).queue.has('/posts/orphan.md')).toBe(false);
    // An incremental listing leaves it queued: it says nothing about it.
    expect(plan(index, [file('/posts/other.md')]).removals).toEqual([]);
  });

  it('a file moved into a folder deleted and re-created earlier in the batch', () => {
    const moved = file('/Old/a.md', { id: 'id:A', hash: 'hA' });
    const result = plan(base(), [deleted('/Old'), folder('/Old', 'id:old2'), deleted('/Notes/a.md'), moved]);
    expect(result.removals.sort()).toEqual(['/notes/a.md', '/old']);
    expect(paths(result.folders)).toEqual(['/old']);
    expect(result.moves).toHaveLength(1);
    expect(result.downloads).toEqual([]);
    const after = commit(base(), result);
    expect(sorted(after.files.keys())).toEqual(['/notes', '/old', '/old/a.md']);
  });

  it('a folder move moves its files', () => {
    const result = plan(base(), [deleted('/Notes'), folder('/Archive', 'id:/notes/'), file('/Archive/a.md', { id: 'id:A', hash: 'hA' })]);
    expect(result.moves.map((m) => [m.from.pathLower, m.to.pathLower])).toEqual([['/notes/a.md', '/archive/a.md']]);
    expect(result.downloads).toEqual([]);
    const after = commit(base(), result);
    expect(sorted(after.files.keys())).toEqual(['/archive', '/archive/a.md', '/old', '/old/keep.md']);
    expect(after.fileIds.get('id:/notes/')).toBe('/archive');
  });

  it('a folder deleted and listed again with its files (renamed away and back) moves them aside and back, not downloaded', () => {
    const back = file('/Notes/a.md', { id: 'id:A', rev: '02', hash: 'hA' });
    const result = plan(base(), [deleted('/Notes'), folder('/Archive'), file('/Archive/a.md', { id: 'id:A', hash: 'hA' }), deleted('/Archive'), folder('/Notes', 'id:/notes/'), back]);
    expect(result.removals.sort()).toEqual(['/archive', '/notes']);
    expect(result.moves).toEqual([{ from: onDisk(a), to: item(back), download: false }]);
    expect(result.downloads).toEqual([]);
    const after = commit(base(), result);
    expect(after.files.get('/notes/a.md')).toEqual(onDisk(back));
    expect(after.fileIds.get('id:A')).toBe('/notes/a.md');
  });

  it('a file whose old path is still there is not a move', () => {
    const result = plan(base(), [file('/Notes/copy.md', { id: 'id:A', hash: 'hA' })]);
    expect(result.moves).toEqual([]);
    expect(paths(result.downloads)).toEqual(['/notes/copy.md']);
  });
});

describe('planChanges: ignore rules', () => {
  it('ignored paths are never queued but remembered', () => {
    const entries = [
      file('/.DS_Store'), folder('/Drafts'), file('/Drafts/a.md'), folder('/posts'), file('/posts/.draft.md'), file('/posts/a.md'), file('/posts/x.tmp'),
    ];
    const result = plan(emptyIndex(), entries, { ignore: ['drafts', '**/*.tmp'] });
    expect(paths(result.downloads)).toEqual(['/posts/a.md']);
    expect(paths(result.folders)).toEqual(['/posts']);
    const after = commit(emptyIndex(), result);
    expect(sorted(after.ignored.keys())).toEqual(['/.ds_store', '/drafts/a.md', '/posts/.draft.md', '/posts/x.tmp']);
  });

  it('a rule change un-ignores remembered files and removes newly ignored local files', () => {
    const secret = file('/posts/secret.md', { rev: '07' });
    const index = indexOf([folder('/posts'), secret, file('/posts/a.md')], { ignored: [file('/drafts/a.md')] });
    const result = plan(index, [], { ignore: ['posts/secret.md'], rulesChanged: true });
    expect(paths(result.downloads)).toEqual(['/drafts/a.md']);
    expect(result.removals).toEqual(['/posts/secret.md']);
    const after = commit(index, result);
    expect([...after.ignored.entries()]).toEqual([['/posts/secret.md', item(secret)]]);
    expect(after.queue.has('/drafts/a.md')).toBe(true);
    expect(after.files.has('/posts/secret.md')).toBe(false);
  });

  it('a rule change remembers the newest listing of a newly ignored file, and forgets one the batch deletes', () => {
    const index = indexOf([file('/a.md', { rev: '01' }), file('/b.md')], { queue: [file('/c.md')] });
    const newer = file('/a.md', { rev: '02' });
    const result = plan(index, [newer, deleted('/b.md')], { ignore: ['*.md'], rulesChanged: true });
    expect(result.downloads).toEqual([]);
    const after = commit(index, result);
    expect(after.ignored.get('/a.md')).toEqual(item(newer));
    expect(after.ignored.has('/b.md')).toBe(false);
    expect(after.ignored.get('/c.md')).toEqual(item(file('/c.md')));
    expect(after.queue.size + after.files.size).toBe(0);
  });

  it('an un-ignored file brings back and indexes the ignored folders above it', () => {
    const index = indexOf([], { ignored: [file('/Drafts/Old/a.md')] });
    const result = plan(index, [], { rulesChanged: true });
    expect(paths(result.downloads)).toEqual(['/drafts/old/a.md']);
    expect(result.folders).toEqual([
      { pathLower: '/drafts', pathDisplay: '/Drafts', id: `${UNLISTED_ID}/drafts` },
      { pathLower: '/drafts/old', pathDisplay: '/Drafts/Old', id: `${UNLISTED_ID}/drafts/old` },
    ]);
    const after = commit(index, result);
    expect(after.files.get('/drafts')?.kind).toBe('folder');
    // ignoring them again removes them whole; a listing that names the folder gives it its real id
    const again = plan(after, [folder('/Drafts', 'id:drafts')], { ignore: ['drafts/old'], rulesChanged: true });
    expect(again.removals).toEqual(['/drafts/old']);
    const later = commit(after, again);
    expect(later.files.get('/drafts')?.id).toBe('id:drafts');
    expect(later.fileIds.has(`${UNLISTED_ID}/drafts`)).toBe(false);
  });

  it('without a rule change, remembered ignored files stay ignored', () => {
    const index = indexOf([], { ignored: [file('/drafts/a.md')] });
    const result = plan(index, [file('/x.md')], { ignore: ['drafts'] });
    expect(commit(index, result).ignored.has('/drafts/a.md')).toBe(true);
    expect(paths(result.downloads)).toEqual(['/x.md']);
  });

  it('deleting an ignored file, or its folder, forgets it', () => {
    const index = indexOf([], { ignored: [file('/.env'), file('/drafts/a.md'), file('/drafts2/b.md')] });
    const result = plan(index, [deleted('/.env'), deleted('/drafts')], { ignore: ['drafts', 'drafts2'] });
    expect(sorted(commit(index, result).ignored.keys())).toEqual(['/drafts2/b.md']);
  });

  it('a remembered file listed again under rules that no longer ignore it is downloaded and forgotten', () => {
    const index = indexOf([], { ignored: [file('/drafts/a.md', { rev: '01' })] });
    const result = plan(index, [file('/drafts/a.md', { rev: '02' })], { rulesChanged: true });
    expect(result.downloads).toEqual([item(file('/drafts/a.md', { rev: '02' }))]);
    expect(commit(index, result).ignored.size).toBe(0);
  });
});

describe('planChanges: unsafe and export-only paths', () => {
  it('refuses them and queues nothing for them', () => {
    const entries = [file('/C:evil.md'), folder('/bad\\dir'), file('/ctl\u0001.md'), file('/ok/..'), file('/doc.gdoc', { downloadable: false }), file('/fine.md')];
    const result = plan(emptyIndex(), entries);
    expect(sorted(paths(result.refused))).toEqual(['/bad\\dir', '/c:evil.md', '/ctl\u0001.md', '/doc.gdoc']);
    expect(result.refused.find((r) => r.pathLower === '/doc.gdoc')?.reason).toMatch(/not downloadable/);
    expect(paths(result.downloads)).toEqual(['/fine.md']); // '/ok/..' is a dot segment: ignored, never written
    expect(result.folders).toEqual([]);
  });

  it('a local file that becomes export-only is removed rather than left stale', () => {
    const index = indexOf([file('/doc.gdoc', { hash: 'h1' })]);
    const result = plan(index, [file('/doc.gdoc', { hash: 'h2', downloadable: false })]);
    expect(result.removals).toEqual(['/doc.gdoc']);
    expect(commit(index, result).files.size).toBe(0);
  });
});

describe('planChanges: full listing after a reset', () => {
  it('removes local files the listing omits and drops their queued downloads; queues the rest', () => {
    const a = file('/a.md', { hash: 'h' });
    const index = indexOf([a, file('/old.md'), folder('/gone'), file('/gone/x.md'), folder('/kept'), file('/kept/old.md')], {
      queue: [file('/q.md'), file('/kept/new.md')], ignored: [file('/.was-ignored')],
    });
    const result = plan(index, [a, folder('/kept'), file('/kept/new.md')], { full: true });
    // /q.md too: queued, so possibly on disk though the index never had it.
    expect(result.removals.sort()).toEqual(['/gone', '/kept/old.md', '/old.md', '/q.md']);
    expect(sorted(paths(result.downloads))).toEqual(['/a.md', '/kept/new.md']);
    const after = commit(index, result);
    expect(sorted(after.files.keys())).toEqual(['/a.md', '/kept']);
    expect(sorted(after.queue.keys())).toEqual(['/a.md', '/kept/new.md']);
    expect(after.ignored.size).toBe(0); // not listed: gone from Dropbox
  });
});

describe('planChanges: determinism', () => {
  it('the same input gives the same plan', () => {
    const index = indexOf([folder('/a'), file('/a/x.md'), file('/b.md', { id: 'id:B' })], { queue: [file('/c.md')], ignored: [file('/.d')] });
    const entries = [deleted('/a'), folder('/a'), file('/a/y.md'), deleted('/b.md'), file('/a/b.md', { id: 'id:B' }), file('/z.md')];
    expect(JSON.stringify(plan(index, entries))).toBe(JSON.stringify(plan(index, entries)));
  });
});

// ---------- property: planning and applying reproduces Dropbox's tree ----------

type RemoteNode = { kind: 'file'; id: string; rev: string; hash: string } | { kind: 'folder'; id: string };
type DiskNode = { kind: 'file'; hash: string } | { kind: 'folder' };

const SEGMENTS = ['a', 'b', '.h'];
const POOL: string[] = [];
for (const s1 of SEGMENTS) {
  POOL.push(`/${s1}`);
  for (const s2 of SEGMENTS) {
    POOL.push(`/${s1}/${s2}`);
    for (const s3 of SEGMENTS.slice(0, 2)) POOL.push(`/${s1}/${s2}/${s3}`);
  }
}
const parentOf = (path: string) => path.slice(0, path.lastIndexOf('/'));
const ancestors = (path: string) => {
  const result: string[] = [];
  for (let p = parentOf(path); p !== ''; p = parentOf(p)) result.unshift(p);
  return result;
};

type Op =
  | { op: 'write'; path: string; content: number }
  | { op: 'mkdir'; path: string }
  | { op: 'delete'; path: string }
  | { op: 'move'; from: string; to: string; deleteFirst: boolean; newRevs: boolean }
  | { op: 'replaceWithFile'; path: string; content: number }
  | { op: 'replaceWithFolder'; path: string };

const pathArb = fc.constantFrom(...POOL);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('write' as const), path: pathArb, content: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('mkdir' as const), path: pathArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), path: pathArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('move' as const), from: pathArb, to: pathArb, deleteFirst: fc.boolean(), newRevs: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('replaceWithFile' as const), path: pathArb, content: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('replaceWithFolder' as const), path: pathArb }) },
);

/** Dropbox, small: a tree, and the list entries each change produces (applied in order, they give the tree). */
class Remote {
  tree = new Map<string, RemoteNode>();
  journal: ListedEntry[] = [];
  revContent = new Map<string, string>();
  private counter = 0;

  private next(prefix: string) { return `${prefix}${++this.counter}`; }
  private fileEntry(path: string): ListedFile {
    const node = this.tree.get(path) as RemoteNode & { kind: 'file' };
    return file(path, { id: node.id, rev: node.rev, hash: node.hash });
  }
  private emit(path: string) {
    const node = this.tree.get(path)!;
    this.journal.push(node.kind === 'file' ? this.fileEntry(path) : folder(path, node.id));
  }
  private newRev(hash: string) {
    const rev = this.next('rev');
    this.revContent.set(rev, hash);
    return rev;
  }
  private canHoldChildren(path: string) { return ancestors(path).every((p) => this.tree.get(p)?.kind !== 'file'); }
  private mkdirs(paths: string[]) {
    for (const p of paths) {
      if (this.tree.has(p)) continue;
      this.tree.set(p, { kind: 'folder', id: this.next('id:') });
      this.emit(p);
    }
  }
  private subtree(path: string) { return [...this.tree.keys()].filter((p) => isUnder(p, path)).sort((x, y) => depth(x) - depth(y)); }

  run(op: Op) {
    switch (op.op) {
      case 'write': {
        const node = this.tree.get(op.path);
        if (node?.kind === 'folder' || !this.canHoldChildren(op.path)) return;
        this.mkdirs(ancestors(op.path));
        const hash = `content${op.content}`;
        this.tree.set(op.path, { kind: 'file', id: node?.id ?? this.next('id:'), rev: this.newRev(hash), hash });
        return this.emit(op.path);
      }
      case 'mkdir':
        if (this.tree.has(op.path) || !this.canHoldChildren(op.path)) return;
        return this.mkdirs([...ancestors(op.path), op.path]);
      case 'delete':
        for (const p of this.subtree(op.path)) this.tree.delete(p);
        this.journal.push(deleted(op.path)); // even when nothing is there: it must be harmless
        return;
      case 'move': {
        if (!this.tree.has(op.from) || this.tree.has(op.to) || isUnder(op.to, op.from) || !this.canHoldChildren(op.to)) return;
        const moving = this.subtree(op.from).map((p) => [p, this.tree.get(p)!] as const);
        if (op.deleteFirst) this.journal.push(deleted(op.from));
        for (const [p] of moving) this.tree.delete(p);
        this.mkdirs(ancestors(op.to));
        for (const [p, node] of moving) {
          const target = op.to + p.slice(op.from.length);
          this.tree.set(target, node.kind === 'file' && op.newRevs ? { ...node, rev: this.newRev(node.hash) } : node);
          this.emit(target);
        }
        if (!op.deleteFirst) this.journal.push(deleted(op.from));
        return;
      }
      case 'replaceWithFile': {
        if (this.tree.get(op.path)?.kind !== 'folder') return;
        for (const p of this.subtree(op.path)) this.tree.delete(p);
        const hash = `content${op.content}`;
        this.tree.set(op.path, { kind: 'file', id: this.next('id:'), rev: this.newRev(hash), hash });
        return this.emit(op.path); // no deleted entry: a file replaces a folder and its children
      }
      case 'replaceWithFolder':
        if (this.tree.get(op.path)?.kind !== 'file') return;
        this.tree.set(op.path, { kind: 'folder', id: this.next('id:') });
        return this.emit(op.path);
    }
  }

  /** list_folder from scratch: every entry, parents first. */
  listing(): ListedEntry[] {
    return [...this.tree.keys()].sort((x, y) => depth(x) - depth(y) || (x < y ? -1 : 1)).map((p) => {
      const node = this.tree.get(p)!;
      return node.kind === 'file' ? this.fileEntry(p) : folder(p, node.id);
    });
  }

  takeJournal(): ListedEntry[] {
    const journal = this.journal;
    this.journal = [];
    return journal;
  }
}

/** The mirror on disk plus the engine's index; applying follows apply-changes.ts, downloading download-queue.ts. */
class Mirror {
  disk = new Map<string, DiskNode>();
  index = emptyIndex();

  private mkdirp(path: string) {
    for (const p of [...ancestors(path), path]) {
      const node = this.disk.get(p);
      if (node?.kind === 'file') throw new Error(`mkdir ${path}: ${p} is a file`);
      if (!node) this.disk.set(p, { kind: 'folder' });
    }
  }
  private rmrf(path: string) { for (const p of [...this.disk.keys()]) if (isUnder(p, path)) this.disk.delete(p); }
  private writeFile(path: string, hash: string) {
    if (parentOf(path) !== '') this.mkdirp(parentOf(path));
    if (this.disk.get(path)?.kind === 'folder') throw new Error(`write ${path}: is a folder`);
    this.disk.set(path, { kind: 'file', hash });
  }

  apply(entries: ListedEntry[], opts: PlanOpts) {
    const result = plan(this.index, entries, opts);
    const staged = new Map<string, string>();
    for (const move of result.moves) {
      const source = this.disk.get(move.from.pathLower);
      if (source?.kind !== 'file') throw new Error(`move source ${move.from.pathLower} is not on disk`);
      staged.set(move.to.id, source.hash);
      this.disk.delete(move.from.pathLower);
    }
    for (const path of result.removals) {
      // apply-changes finds the display path in the index or the batch; otherwise nothing is removed on disk
      if (this.index.files.has(path) || entries.some((e) => e.pathLower === path)) this.rmrf(path);
    }
    for (const f of result.folders) this.mkdirp(f.pathLower);
    for (const move of result.moves) this.writeFile(move.to.pathLower, staged.get(move.to.id)!);
    this.index = commit(this.index, result);
  }

  download(revContent: Map<string, string>) {
    for (const [path, queued] of this.index.queue) {
      const hash = revContent.get(queued.rev)!;
      expect(hash).toBe(queued.contentHash);
      this.writeFile(path, hash);
      // download-complete.lua
      const previous = this.index.files.get(path);
      if (previous && previous.id !== queued.id && this.index.fileIds.get(previous.id) === path) this.index.fileIds.delete(previous.id);
      this.index.files.set(path, { kind: 'file', ...queued });
      this.index.fileIds.set(queued.id, path);
    }
    this.index.queue.clear();
  }
}

describe('planChanges: property', () => {
  const RULES = [[], ['b'], ['**/b']];

  it('planning each batch and applying it reproduces the Dropbox tree on disk and in the index', () => {
    const roundArb = fc.record({
      ops: fc.array(opArb, { maxLength: 8 }), full: fc.boolean(), downloadAfter: fc.boolean(), rules: fc.integer({ min: 0, max: RULES.length - 1 }),
    });
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 8 }), fc.array(roundArb, { minLength: 1, maxLength: 3 }), (initial, rounds) => {
        const remote = new Remote();
        for (const op of initial) remote.run(op);
        remote.takeJournal();
        const mirror = new Mirror();
        mirror.apply(remote.listing(), { full: true });
        mirror.download(remote.revContent);
        let rules = 0;
        // Ignored folders are not remembered: after an un-ignore, only a full listing brings back empty
        // ones and their index records (files under them arrive with their folders on disk).
        let foldersMayLag = false;
        for (const round of rounds) {
          for (const op of round.ops) remote.run(op);
          const journal = remote.takeJournal();
          const rulesChanged = round.rules !== rules;
          rules = round.rules;
          // a cursor reset loses the journal: the full listing must reconcile
          mirror.apply(round.full ? remote.listing() : journal, { full: round.full, ignore: RULES[rules], rulesChanged });
          if (round.full) foldersMayLag = false;
          else if (rulesChanged) foldersMayLag = true;
          if (round.downloadAfter) mirror.download(remote.revContent);
        }
        mirror.download(remote.revContent);

        const isIgnored = createIgnoreRule(RULES[rules]!);
        const expectedDisk = new Map<string, DiskNode>();
        const expectedFiles = new Map<string, LocalRecord>();
        const expectedIgnored: string[] = [];
        for (const [path, node] of remote.tree) {
          if (isIgnored(path)) {
            if (node.kind === 'file') expectedIgnored.push(path);
            continue;
          }
          expectedDisk.set(path, node.kind === 'file' ? { kind: 'file', hash: node.hash } : { kind: 'folder' });
          expectedFiles.set(path, node.kind === 'file'
            ? { kind: 'file', ...item(file(path, { id: node.id, rev: node.rev, hash: node.hash })) }
            : { kind: 'folder', pathLower: path, pathDisplay: path, id: node.id });
        }
        const exact = <T>(map: Map<string, T>) => new Map([...map].sort());
        const filesOnly = <T extends { kind: string }>(map: Map<string, T>) => new Map([...map].filter(([, node]) => node.kind === 'file').sort());
        const foldersOf = <T extends { kind: string }>(map: Map<string, T>) => sorted([...map].filter(([, node]) => node.kind === 'folder').map(([path]) => path));
        // A folder made for an un-ignored file is indexed under a stand-in id until a listing names it.
        const standIn = (files: Map<string, LocalRecord>) => new Map([...files].map(([path, record]) => {
          const expected = expectedFiles.get(path);
          return [path, record.kind === 'folder' && record.id.startsWith(UNLISTED_ID) && expected?.kind === 'folder' ? expected : record] as const;
        }));
        if (!foldersMayLag) {
          expect(exact(mirror.disk)).toEqual(exact(expectedDisk));
          expect(exact(standIn(mirror.index.files))).toEqual(exact(expectedFiles));
        } else {
          // Ignored folders are not remembered: after an un-ignore, an empty one comes back only with a full listing.
          const foldersOf = <T extends { kind: string }>(map: Map<string, T>) => new Map([...map].filter(([, node]) => node.kind === 'folder'));
          const withoutMissingFolders = <T extends { kind: string }>(expected: Map<string, T>, actual: Map<string, T>) =>
            exact(new Map([...expected].filter(([path, node]) => node.kind === 'file' || actual.has(path))));
          expect(exact(mirror.disk)).toEqual(withoutMissingFolders(expectedDisk, mirror.disk));
          expect(exact(standIn(mirror.index.files))).toEqual(withoutMissingFolders(expectedFiles, mirror.index.files));
          expect(foldersOf(mirror.index.files).size).toBe(foldersOf(mirror.disk).size);
        }
        for (const [id, path] of mirror.index.fileIds) expect(mirror.index.files.get(path)?.id).toBe(id); // no stale ids
        for (const record of mirror.index.files.values()) expect(mirror.index.fileIds.get(record.id)).toBe(record.pathLower);
        expect(sorted(mirror.index.ignored.keys())).toEqual(sorted(expectedIgnored));
        for (const [path, remembered] of mirror.index.ignored) expect(remembered.rev).toBe((remote.tree.get(path) as { rev: string }).rev);
      }),
      { numRuns: Number(process.env.PLAN_RUNS ?? 500) },
    );
  });
});
