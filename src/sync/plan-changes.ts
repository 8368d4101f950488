import type { DownloadItem, ListedEntry, ListedFile, ListedFolder, LocalRecord } from './records.js';
import { isUnder } from './paths.js';

/**
 * Turns a batch of listed entries into what must happen locally: pure, no I/O, so every rule of
 * Dropbox's "apply entries in order" algorithm is tested on its own.
 *
 * The batch is every entry listed since the last commit, in Dropbox's order (a listing can span
 * several pages and runs). Rules, from the list_folder spec and Maestral:
 * - a deletion removes the path and everything under it, superseding what the batch said earlier
 *   about those paths; entries after it re-create what they name;
 * - a file replaces whatever was at its path (a folder and its children); a folder replaces a file;
 * - a file listed with the id the index knows at another path, whose old path the batch deletes,
 *   is a move: the local file moves and keeps its entry; it is downloaded only if its content changed;
 * - ignored paths never reach the disk but are remembered, so a rule change can un-ignore them;
 * - a full listing (first sync, or after a cursor reset) also removes whatever the index has that
 *   the listing does not.
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

export function planChanges(input: PlanInput): Plan {
  const upserts = new Map<string, Upsert>();
  const deletions: string[] = [];
  let hasFolderUpsert = false;

  for (const entry of input.entries) {
    if (entry.tag === 'deleted') {
      deletions.push(entry.pathLower);
      for (const path of [...upserts.keys()]) if (isUnder(path, entry.pathLower)) upserts.delete(path);
      continue;
    }
    if (entry.tag === 'file' && hasFolderUpsert && upserts.get(entry.pathLower)?.tag === 'folder') {
      for (const path of [...upserts.keys()]) if (isUnder(path, entry.pathLower)) upserts.delete(path);
    }
    if (entry.tag === 'folder') hasFolderUpsert = true;
    upserts.set(entry.pathLower, entry);
  }

  const removalCandidates = new Set<string>(deletions);
  const refused: Plan['refused'] = [];
  const ignoredOps: FieldOps<DownloadItem> = { set: [], del: [] };
  const kept = new Map<string, Upsert>();

  for (const [path, upsert] of upserts) {
    const local = input.files.get(path);
    if (input.isIgnored(path)) {
      if (upsert.tag === 'file') ignoredOps.set.push([path, toItem(upsert)]);
      if (local) removalCandidates.add(path);
      continue;
    }
    const reason = input.unsafeReason(upsert.pathDisplay) ?? (upsert.tag === 'file' && !upsert.isDownloadable ? 'not downloadable (export-only file)' : null);
    if (reason) {
      refused.push({ pathLower: path, pathDisplay: upsert.pathDisplay, reason });
      continue;
    }
    // A change of kind replaces what was there: a file's children go, a folder's file goes.
    if (local && local.kind !== (upsert.tag === 'file' ? 'file' : 'folder')) removalCandidates.add(path);
    kept.set(path, upsert);
  }

  if (input.full) {
    for (const path of input.files.keys()) if (!kept.has(path)) removalCandidates.add(path);
  }

  const unignored: DownloadItem[] = [];
  if (input.rulesChanged) {
    for (const [path, record] of input.files) {
      if (input.isIgnored(path) && !kept.has(path)) {
        removalCandidates.add(path);
        if (record.kind === 'file') ignoredOps.set.push([path, stripKind(record)]);
      }
    }
    for (const [path, item] of input.ignored) {
      if (!input.isIgnored(path) && !upserts.has(path) && !deletions.some((d) => isUnder(path, d))) {
        unignored.push(item);
        ignoredOps.del.push(path);
      }
    }
  }

  const removals = topmost([...removalCandidates]);
  const removedLocally = (path: string) => removals.some((r) => isUnder(path, r));
  for (const path of input.ignored.keys()) {
    if (deletions.some((d) => isUnder(path, d)) && !upserts.has(path)) ignoredOps.del.push(path);
  }

  const moves: PlannedMove[] = [];
  const downloads: DownloadItem[] = [...unignored];
  const folders: Plan['folders'] = [];
  const filesOps: FieldOps<LocalRecord> = { set: [], del: [] };
  const idOps: FieldOps<string> = { set: [], del: [] };
  const queueOps: FieldOps<DownloadItem> = { set: [], del: [] };

  for (const [path, record] of input.files) {
    if (removedLocally(path)) {
      filesOps.del.push(path);
      if (input.fileIds.get(record.id) === path) idOps.del.push(record.id);
    }
  }
  for (const path of input.queue.keys()) if (removedLocally(path) || (input.full && !kept.has(path))) queueOps.del.push(path);

  for (const upsert of [...kept.values()].sort((a, b) => depth(a.pathLower) - depth(b.pathLower))) {
    if (upsert.tag === 'folder') {
      folders.push({ pathLower: upsert.pathLower, pathDisplay: upsert.pathDisplay, id: upsert.id });
      filesOps.set.push([upsert.pathLower, { kind: 'folder', pathLower: upsert.pathLower, pathDisplay: upsert.pathDisplay, id: upsert.id }]);
      idOps.set.push([upsert.id, upsert.pathLower]);
      continue;
    }
    const item = toItem(upsert);
    const movedFrom = movedFromRecord(upsert, input, removedLocally);
    if (movedFrom) {
      const changed = movedFrom.contentHash !== upsert.contentHash;
      moves.push({ from: movedFrom, to: item, download: changed });
      if (changed) {
        downloads.push(item);
      } else {
        filesOps.set.push([upsert.pathLower, { kind: 'file', ...item }]);
        idOps.set.push([upsert.id, upsert.pathLower]);
      }
      continue;
    }
    const local = input.files.get(upsert.pathLower);
    const unchanged = local?.kind === 'file' && local.contentHash === upsert.contentHash && !removedLocally(upsert.pathLower);
    // After a reset the index is not trusted: queue it, and the downloader skips it if the bytes on disk match.
    if (unchanged && !input.full) {
      if (local.rev !== upsert.rev || local.pathDisplay !== upsert.pathDisplay) filesOps.set.push([upsert.pathLower, { kind: 'file', ...item }]);
      continue;
    }
    downloads.push(item);
  }
  for (const item of downloads) queueOps.set.push([item.pathLower, item]);

  return { removals, moves, folders, downloads, refused, index: { files: filesOps, fileIds: idOps, queue: queueOps, ignored: ignoredOps } };
}

/** The local file this listed file was moved from, if the index knows its id at a path the batch removes. */
function movedFromRecord(file: ListedFile, input: PlanInput, removedLocally: (path: string) => boolean) {
  const oldPath = input.fileIds.get(file.id);
  if (!oldPath || oldPath === file.pathLower || !removedLocally(oldPath)) return undefined;
  const record = input.files.get(oldPath);
  return record?.kind === 'file' ? record : undefined;
}

/** Keeps only the paths that no other path in the list contains. */
function topmost(paths: string[]): string[] {
  const sorted = [...new Set(paths)].sort((a, b) => depth(a) - depth(b));
  const result: string[] = [];
  for (const path of sorted) if (!result.some((r) => isUnder(path, r))) result.push(path);
  return result;
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
