import type { DownloadItem, ListedEntry, LocalRecord } from './records.js';

/**
 * Which part of the local index the apply step reads for a batch. This module is the spec;
 * `src/redis/lua/apply-load.lua` makes the same decision inside Redis (one round trip), and a test
 * runs both on the same random cases so they cannot drift apart.
 *
 * Why a part is enough. With a continue listing and unchanged ignore rules, `planChanges` and
 * `withLocalCasing` look at the index in three ways:
 * - by path: each listed path and the folders above it (local casing, `ensureParents`);
 * - by id: the listed files' ids (a move) and the ids of the records read (`setRecord` forgets the
 *   id of what it replaces, a removal forgets the id of what it removes);
 * - by iterating `files`, `queue` and `ignored`, where a record matters only when it is at or under
 *   a listed path: a deletion, a file (which replaces a folder and all below it) or a replaced,
 *   ignored or refused entry removes at most the subtree of its own path; nothing else removes.
 * A move's old path counts only when the batch removes it, so it is a listed path too (or under a
 * listed folder, and then everything is read). `apply-changes.ts` also reads `files` at each
 * removal: a listed path.
 *
 * What is under a listed path: for `queue` and `ignored` (small, and an ignored folder has no
 * record of its own) the script looks through their fields. For `files`, the big one, it relies on
 * a property the planner keeps: every record lies under folders that `files` records as folders
 * (`ensureParents` makes them, a removal takes a folder's records with it, and a download is
 * recorded only where the planner queued it). So a listed path that `files` does not record as a
 * folder has nothing under it there; one that it does record as a folder might, and then the whole
 * index is read. The whole index is also read for a full listing (it removes what it does not
 * list) and when the ignore rules may have changed (everything they cover moves in or out).
 */
export type IndexReadScope = 'none' | 'targeted' | 'whole';

/** What apply-load.lua reads before it decides: the unapplied batch, the listed page, and the mailbox's listing and ignore fields. */
export interface ApplyReadState {
  entries: readonly ListedEntry[];
  /** The listed page the batch ends with (apply-read.lua's page id), null or '' when none. */
  pageId: string | null;
  /** The mailbox's `mode` as stored ('full'; null when unset, which is continue). */
  mode: string | null;
  /** The mailbox's `ignoreRules`: the rules the index was built with, as JSON (null before the first commit). */
  ignoreRules: string | null;
  /**
   * The mailbox's `ignore` field as stored (JSON of the patterns), null when unset; or the patterns
   * an apply of this page planned with once it began its moves (the `apply-rules` key, apply-moves.lua).
   */
  ignore: string | null;
}

export interface IndexView {
  files: ReadonlyMap<string, LocalRecord>;
  fileIds: ReadonlyMap<string, string>;
  ignored: ReadonlyMap<string, DownloadItem>;
  queue: ReadonlyMap<string, DownloadItem>;
}

export type WholeIndexReason = 'full listing' | 'ignore rules may have changed' | 'a listed path is a folder in the index' | 'an entry without a path';

export type IndexRead =
  /** No page to apply (already committed): the step returns before it plans. */
  | { scope: 'none' }
  | { scope: 'whole'; reason: WholeIndexReason }
  /** The fields read from each hash (those present in it). */
  | { scope: 'targeted'; files: Set<string>; fileIds: Set<string>; queue: Set<string>; ignored: Set<string> };

/**
 * The folders above `path` as plan-changes.ts walks them (`wipedBy`, `underAny`): the prefix before
 * every "/" after the first character. "/a/b/c" -> "/a", "/a/b". Also covers `parentsOf` and
 * `parentPathLower`, whose folders are among these.
 */
export function ancestorsOf(path: string): string[] {
  const ancestors: string[] = [];
  for (let slash = path.indexOf('/', 1); slash !== -1; slash = path.indexOf('/', slash + 1)) ancestors.push(path.slice(0, slash));
  return ancestors;
}

/** Whether `path` is one of `paths` or below one of them (by the prefixes of `ancestorsOf`). */
function atOrUnder(path: string, paths: ReadonlySet<string>): boolean {
  return paths.has(path) || ancestorsOf(path).some((ancestor) => paths.has(ancestor));
}

/**
 * The ignore rules may have changed since the index was built. apply-changes.ts compares the
 * listing's `ignoreRules` with JSON.stringify of the parsed account patterns; Lua cannot reproduce
 * JSON.stringify byte for byte (cjson escapes differently), so it compares the stored strings. Both
 * are written by JSON.stringify (account-store.ts, changes-commit via apply-changes.ts), so equal
 * strings mean equal rules, and unequal ones only make the read whole.
 */
export function ignoreRulesMayHaveChanged(ignoreRules: string | null, ignore: string | null): boolean {
  return ignoreRules !== null && ignoreRules !== (ignore === null || ignore === '' ? '[]' : ignore);
}

export function chooseIndexRead(state: ApplyReadState, index: IndexView): IndexRead {
  if (state.pageId === null || state.pageId === '') return { scope: 'none' };
  if (state.mode === 'full') return { scope: 'whole', reason: 'full listing' };
  if (ignoreRulesMayHaveChanged(state.ignoreRules, state.ignore)) return { scope: 'whole', reason: 'ignore rules may have changed' };

  const listed = new Set<string>();
  const listedFileIds: string[] = [];
  for (const entry of state.entries as readonly unknown[]) {
    const { pathLower, tag, id } = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    if (typeof pathLower !== 'string') return { scope: 'whole', reason: 'an entry without a path' };
    listed.add(pathLower);
    if (tag === 'file' && typeof id === 'string') listedFileIds.push(id);
  }

  const wantedPaths = new Set<string>();
  for (const path of listed) {
    wantedPaths.add(path);
    for (const ancestor of ancestorsOf(path)) wantedPaths.add(ancestor);
  }
  for (const path of listed) if (index.files.get(path)?.kind === 'folder') return { scope: 'whole', reason: 'a listed path is a folder in the index' };

  const files = new Set([...wantedPaths].filter((path) => index.files.has(path)));
  const wantedIds = new Set(listedFileIds);
  for (const path of files) {
    const id = (index.files.get(path) as { id?: unknown }).id;
    if (typeof id === 'string') wantedIds.add(id);
  }
  const fileIds = new Set([...wantedIds].filter((id) => index.fileIds.has(id)));
  const nearListed = (keys: Iterable<string>) => new Set(listed.size === 0 ? [] : [...keys].filter((path) => atOrUnder(path, listed)));
  return { scope: 'targeted', files, fileIds, queue: nearListed(index.queue.keys()), ignored: nearListed(index.ignored.keys()) };
}

/** The part of `index` that `read` names, in the index's own order (the whole index for 'whole', nothing for 'none'). */
export function readIndex(index: IndexView, read: IndexRead): { files: Map<string, LocalRecord>; fileIds: Map<string, string>; ignored: Map<string, DownloadItem>; queue: Map<string, DownloadItem> } {
  const pick = <T>(map: ReadonlyMap<string, T>, fields: ReadonlySet<string> | 'all' | 'none') =>
    new Map([...map].filter(([field]) => fields === 'all' || (fields !== 'none' && fields.has(field))));
  const fieldsOf = (name: 'files' | 'fileIds' | 'queue' | 'ignored') => (read.scope === 'targeted' ? read[name] : read.scope === 'whole' ? 'all' : 'none');
  return {
    files: pick(index.files, fieldsOf('files')),
    fileIds: pick(index.fileIds, fieldsOf('fileIds')),
    ignored: pick(index.ignored, fieldsOf('ignored')),
    queue: pick(index.queue, fieldsOf('queue')),
  };
}
