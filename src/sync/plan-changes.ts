import type { DownloadItem, ListedEntry, ListedFile, ListedFolder, LocalRecord } from './records.js';

/**
 * Turns a batch of listed entries into what must happen locally: pure, no I/O, so every rule of
 * Dropbox's "apply entries in order" algorithm is tested on its own.
 *
 * The batch is every entry listed since the last commit, in Dropbox's order (a listing can span
 * several pages and runs). Rules, from the list_folder spec and Maestral:
 * - a deletion removes the path and everything under it, superseding what the batch said earlier
 *   about those paths; entries after it re-create what they name;
 * - a file replaces whatever was at its path (a folder and its children, even if a folder comes back
 *   at that path later in the batch); a folder replaces a file;
 * - a file listed with the id the index knows at another path, whose old path the batch removes,
 *   is a move: the local file moves and keeps its entry; it is downloaded only if its content changed
 *   (until then the index records the old content at the new path: `files` is what is on disk);
 * - ignored paths never reach the disk but are remembered, so a rule change can un-ignore them;
 *   folders made for what was under an ignored folder are indexed under a stand-in id (UNLISTED_ID);
 * - a queued download goes when the batch removes, replaces or ignores its path;
 * - a full listing (first sync, or after a cursor reset) also removes whatever the index, the queue
 *   or the ignored files have that the listing does not (a queued file's path from disk too).
 */
export interface PlanInput {
  entries: readonly ListedEntry[];
  files: ReadonlyMap<string, LocalRecord>;
  fileIds: ReadonlyMap<string, string>;
  ignored: ReadonlyMap<string, DownloadItem>;
  queue: ReadonlyMap<string, DownloadItem>;
  isIgnored: (pathLower: string) => boolean;
  /** Why a display path cannot be written under the account folder, or null when it can. */
  unsafeReason: (pathDisplay: string) => string | null;
  /** The batch is a complete listing: reconcile deletions Dropbox never reported. */
  full: boolean;
  /** The ignore rules differ from those the index was built with. */
  rulesChanged: boolean;
}

export interface PlannedMove {
  from: LocalRecord & { kind: 'file' };
  to: DownloadItem;
  /** The content changed too: download after moving. */
  download: boolean;
}

export interface FieldOps<T> {
  set: [string, T][];
  del: string[];
}

export interface Plan {
  /** Local subtrees to remove (path_lower), each under no other. */
  removals: string[];
  moves: PlannedMove[];
  /** Folders to create, parents first. */
  folders: { pathLower: string; pathDisplay: string; id: string }[];
  downloads: DownloadItem[];
  refused: { pathLower: string; pathDisplay: string; reason: string }[];
  index: {
    files: FieldOps<LocalRecord>;
    fileIds: FieldOps<string>;
    queue: FieldOps<DownloadItem>;
    ignored: FieldOps<DownloadItem>;
  };
}

type Upsert = ListedFile | ListedFolder;

const depth = (pathLower: string) => pathLower.split('/').length;

/** Prefix of the stand-in id of a folder made for an un-ignored file before any listing named it. */
export const UNLISTED_ID = 'unlisted:';
const kindOf = (upsert: Upsert) => (upsert.tag === 'file' ? 'file' : 'folder');

export function planChanges(input: PlanInput): Plan {
  // Replay the batch in order. A path's last entry is what the batch says about it, unless a later
  // entry wiped it: a deletion of it or of a folder above it, or a file listed at a folder above it
  // (a file replaces a folder and all its children, even if a folder comes back at that path later).
  const last = new Map<string, { entry: Upsert; seq: number }>();
  const deletedAt = new Map<string, number>();
  const fileAt = new Map<string, number>();
  input.entries.forEach((entry, seq) => {
    if (entry.tag === 'deleted') {
      deletedAt.set(entry.pathLower, seq);
      return;
    }
    last.set(entry.pathLower, { entry, seq });
    if (entry.tag === 'file') fileAt.set(entry.pathLower, seq);
  });
  /** The deleted path, or the folder a file replaced, that removed `path` after `seq` (-1: before the batch). */
  const wipedBy = (path: string, seq: number): string | undefined => {
    if (deletedAt.size === 0 && fileAt.size === 0) return undefined;
    for (let slash = path.indexOf('/', 1); ; slash = path.indexOf('/', slash + 1)) {
      const prefix = slash === -1 ? path : path.slice(0, slash);
      if ((deletedAt.get(prefix) ?? -1) > seq) return prefix;
      if (slash === -1) return undefined;
      if ((fileAt.get(prefix) ?? -1) > seq) return prefix;
    }
  };
  const wipedAfter = (path: string, seq: number) => wipedBy(path, seq) !== undefined;

  const upserts = new Map<string, Upsert>();
  for (const [path, { entry, seq }] of last) if (!wipedAfter(path, seq)) upserts.set(path, entry);

  const refused: Plan['refused'] = [];
  const ignoredSet = new Map<string, DownloadItem>();
  const kept = new Map<string, Upsert>();
  for (const [path, upsert] of upserts) {
    if (input.isIgnored(path)) {
      if (upsert.tag === 'file') ignoredSet.set(path, toItem(upsert));
      continue;
    }
    const reason = input.unsafeReason(upsert.pathDisplay) ?? (upsert.tag === 'file' && !upsert.isDownloadable ? 'not downloadable (export-only file)' : null);
    if (reason) {
      refused.push({ pathLower: path, pathDisplay: upsert.pathDisplay, reason });
      continue;
    }
    kept.set(path, upsert);
  }

  // What is on disk goes when the batch wiped it, replaced it with something of another kind, or
  // with something that must not be on disk (ignored, refused); when a full listing omits it; and
  // when new ignore rules cover it.
  const goneLocally = (path: string, record: LocalRecord): boolean => {
    const upsert = kept.get(path);
    if (upsert) return kindOf(upsert) !== record.kind;
    if (upserts.has(path) || input.full) return true;
    return input.rulesChanged && input.isIgnored(path);
  };
  // A file deleted and listed again at its path (renamed away and back, or to another casing through
  // a temporary name) is the same file: it stays, and keeps its entry, instead of being removed and
  // downloaded as new.
  const relistedInPlace = (path: string): boolean => {
    const upsert = kept.get(path);
    const record = input.files.get(path);
    return upsert?.tag === 'file' && record?.kind === 'file' && record.id === upsert.id;
  };
  const removalCandidates = new Set<string>([...deletedAt.keys()].filter((path) => !relistedInPlace(path)));
  for (const [path, record] of input.files) {
    // A wiped path goes with whatever wiped it: a folder replaced by a file is removed whole, even
    // when the index does not know the folder itself (made on disk for an un-ignored file).
    const wiper = wipedBy(path, -1);
    if (wiper !== undefined) {
      if (!relistedInPlace(wiper)) removalCandidates.add(wiper);
    } else if (goneLocally(path, record)) removalCandidates.add(path);
  }
  // After a full listing, a queued file it omits goes from disk too: its bytes may be there all the
  // same (renamed into place, then a crash took the step's completion: the index never heard of
  // it), and nothing after a full listing would ever remove them.
  if (input.full) for (const path of input.queue.keys()) if (!kept.has(path) && !input.files.has(path)) removalCandidates.add(path);
  const removals = topmost([...removalCandidates]);
  const removalSet = new Set(removals);
  const removedLocally = (path: string) => underAny(path, removalSet);

  // Files that the current rules ignore are remembered, newest knowledge first: the listing, then
  // a queued download, then the file on disk. Nothing is remembered for what the batch removed, or
  // what a full listing omits.
  if (input.rulesChanged && !input.full) {
    const remember = (path: string, item: DownloadItem) => {
      if (!ignoredSet.has(path) && !upserts.has(path) && !wipedAfter(path, -1) && input.isIgnored(path)) ignoredSet.set(path, item);
    };
    for (const [path, item] of input.queue) remember(path, item);
    for (const [path, record] of input.files) if (record.kind === 'file') remember(path, stripKind(record));
  }
  const ignoredDel: string[] = [];
  const unignored: DownloadItem[] = [];
  for (const [path, item] of input.ignored) {
    if (ignoredSet.has(path)) continue;
    if (upserts.has(path) || input.full || wipedAfter(path, -1)) {
      ignoredDel.push(path);
    } else if (input.rulesChanged && !input.isIgnored(path)) {
      unignored.push(item);
      ignoredDel.push(path);
    }
  }

  const moves: PlannedMove[] = [];
  const downloads: DownloadItem[] = [];
  const folders: Plan['folders'] = [];
  const filesOps: FieldOps<LocalRecord> = { set: [], del: [] };
  const idOps: FieldOps<string> = { set: [], del: [] };

  for (const [path, record] of input.files) {
    if (removedLocally(path)) {
      filesOps.del.push(path);
      if (input.fileIds.get(record.id) === path) idOps.del.push(record.id);
    }
  }
  /** Records `record` at its path, forgetting the id of what it replaces there. */
  const setRecord = (record: LocalRecord) => {
    filesOps.set.push([record.pathLower, record]);
    idOps.set.push([record.id, record.pathLower]);
    const previous = input.files.get(record.pathLower);
    if (previous && previous.id !== record.id && !removedLocally(record.pathLower) && input.fileIds.get(previous.id) === record.pathLower) {
      idOps.del.push(previous.id);
    }
  };

  // A folder that was ignored is not in the index, nor listed again when the rules stop ignoring it:
  // the folders above everything placed here are made and indexed with it (under a stand-in id until
  // a listing names them), so that the index keeps knowing everything on disk.
  const unlisted = new Map<string, Plan['folders'][number]>();
  const localKind = (path: string) => (removedLocally(path) ? undefined : input.files.get(path)?.kind);
  /** False when a file stands where a parent folder should be. */
  const ensureParents = (item: { pathLower: string; pathDisplay: string }): boolean => {
    const parents = parentsOf(item);
    if (parents.some(({ pathLower }) => localKind(pathLower) === 'file' || kept.get(pathLower)?.tag === 'file')) return false;
    for (const parent of parents) {
      if (localKind(parent.pathLower) || kept.has(parent.pathLower) || unlisted.has(parent.pathLower)) continue;
      unlisted.set(parent.pathLower, { ...parent, id: `${UNLISTED_ID}${parent.pathLower}` });
    }
    return true;
  };
  for (const item of unignored) if (ensureParents(item)) downloads.push(item); // else stale: it cannot be there
  for (const upsert of kept.values()) ensureParents(upsert);
  for (const folder of unlisted.values()) {
    folders.push(folder);
    setRecord({ kind: 'folder', ...folder });
  }

  const movedSources = new Set<string>();
  for (const upsert of [...kept.values()].sort((a, b) => depth(a.pathLower) - depth(b.pathLower))) {
    if (upsert.tag === 'folder') {
      folders.push({ pathLower: upsert.pathLower, pathDisplay: upsert.pathDisplay, id: upsert.id });
      setRecord({ kind: 'folder', pathLower: upsert.pathLower, pathDisplay: upsert.pathDisplay, id: upsert.id });
      continue;
    }
    const item = toItem(upsert);
    const movedFrom = movedFromRecord(upsert, input, removedLocally) ?? renamedInPlace(upsert, input, removedLocally);
    if (movedFrom && !movedSources.has(movedFrom.pathLower)) {
      movedSources.add(movedFrom.pathLower);
      const changed = !sameContent(movedFrom, upsert);
      moves.push({ from: movedFrom, to: item, download: changed });
      // The index says what is on disk: until the download lands, that is the old content at the new path.
      setRecord(changed ? { ...movedFrom, pathLower: item.pathLower, pathDisplay: item.pathDisplay } : { kind: 'file', ...item });
      if (changed) downloads.push(item);
      continue;
    }
    const local = input.files.get(upsert.pathLower);
    const unchanged = local?.kind === 'file' && sameContent(local, upsert) && !removedLocally(upsert.pathLower);
    // After a reset the index is not trusted: queue it, and the downloader skips it if the bytes on disk match.
    if (unchanged && !input.full) {
      // The same bytes with another client_modified (a restore, a re-upload) still need the mtime
      // on disk to follow: queued, the downloader finds the bytes in place and only sets the time.
      if (local.clientModified !== item.clientModified) {
        downloads.push(item);
        continue;
      }
      if (!sameItem(local, item)) setRecord({ kind: 'file', ...item });
      continue;
    }
    downloads.push(item);
  }

  folders.sort((a, b) => depth(a.pathLower) - depth(b.pathLower));

  // A queued download is dropped when its path was removed or wiped, when the batch says something
  // else about it (a folder, an ignored or refused file, content already on disk), when a full
  // listing omits it, or when new rules ignore it; a new download for the path replaces it.
  const queueOps: FieldOps<DownloadItem> = { set: downloads.map((item) => [item.pathLower, item]), del: [] };
  const queuedNow = new Set(downloads.map((item) => item.pathLower));
  for (const path of input.queue.keys()) {
    if (queuedNow.has(path)) continue;
    if (removedLocally(path) || wipedAfter(path, -1) || upserts.has(path) || input.full || (input.rulesChanged && input.isIgnored(path))) {
      queueOps.del.push(path);
    }
  }

  return {
    removals,
    moves,
    folders,
    downloads,
    refused,
    index: { files: filesOps, fileIds: idOps, queue: queueOps, ignored: { set: [...ignoredSet], del: ignoredDel } },
  };
}

/** The folders above a path, parents first, with their display paths taken from its own. */
function parentsOf(item: { pathLower: string; pathDisplay: string }): { pathLower: string; pathDisplay: string }[] {
  const lower = item.pathLower.split('/');
  const display = item.pathDisplay.split('/');
  if (lower.length !== display.length) return [];
  const parents: { pathLower: string; pathDisplay: string }[] = [];
  for (let end = 2; end < lower.length; end++) {
    parents.push({ pathLower: lower.slice(0, end).join('/'), pathDisplay: display.slice(0, end).join('/') });
  }
  return parents;
}

/**
 * The local file this listed file was moved from, if the index knows its id at a path the batch
 * removes. That path may be its own: a file under a folder renamed away and back (or to another
 * case through a temporary name) is listed again at its path with its id after the folder's
 * deletion; it moves aside while the folder is removed and comes back, keeping its entry, instead
 * of being removed and downloaded as a new post.
 */
function movedFromRecord(file: ListedFile, input: PlanInput, removedLocally: (path: string) => boolean) {
  const oldPath = input.fileIds.get(file.id);
  if (!oldPath || !removedLocally(oldPath)) return undefined;
  const record = input.files.get(oldPath);
  return record?.kind === 'file' && record.id === file.id ? record : undefined;
}

/**
 * The local file at this file's path_lower under another name: the same path for Dropbox (case, or
 * Unicode normalisation, differs), another file on a case-sensitive disk. Dropbox does not report a
 * case-only rename; the next listing of the file shows the new name. The file moves to it (and keeps
 * its entry), or the download would write a second file beside the first, which nothing would ever
 * remove.
 */
function renamedInPlace(file: ListedFile, input: PlanInput, removedLocally: (path: string) => boolean) {
  const record = input.files.get(file.pathLower);
  if (record?.kind !== 'file' || removedLocally(file.pathLower) || record.pathDisplay === file.pathDisplay) return undefined;
  return record;
}

/** Whether `path` is one of `folders` or below one of them. */
function underAny(path: string, folders: ReadonlySet<string>): boolean {
  if (folders.size === 0) return false;
  for (let slash = path.indexOf('/', 1); ; slash = path.indexOf('/', slash + 1)) {
    if (folders.has(slash === -1 ? path : path.slice(0, slash))) return true;
    if (slash === -1) return false;
  }
}

/** Keeps only the paths that no other path in the list contains. */
function topmost(paths: string[]): string[] {
  const sorted = [...new Set(paths)].sort((a, b) => depth(a) - depth(b));
  const result: string[] = [];
  const kept = new Set<string>();
  for (const path of sorted) {
    if (underAny(path, kept)) continue;
    result.push(path);
    kept.add(path);
  }
  return result;
}

/**
 * Whether the file on record has the listed content. Dropbox always lists a content_hash; a
 * compatible server that lists none (`''`) is trusted by revision instead: two empty hashes say
 * nothing, and taking them as equal would keep every later edit of the file off the disk.
 */
export function sameContent(record: { contentHash: string; rev: string }, listed: { contentHash: string; rev: string }): boolean {
  if (listed.contentHash === '' || record.contentHash === '') return listed.rev === record.rev;
  return listed.contentHash === record.contentHash;
}

function sameItem(record: LocalRecord & { kind: 'file' }, item: DownloadItem): boolean {
  return (Object.keys(item) as (keyof DownloadItem)[]).every((key) => record[key] === item[key]);
}

function toItem(file: ListedFile): DownloadItem {
  return {
    pathLower: file.pathLower,
    pathDisplay: file.pathDisplay,
    id: file.id,
    rev: file.rev,
    contentHash: file.contentHash,
    size: file.size,
    clientModified: file.clientModified,
    serverModified: file.serverModified,
  };
}

function stripKind(record: LocalRecord & { kind: 'file' }): DownloadItem {
  const { kind: _kind, ...item } = record;
  return item;
}
