import { mkdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createIgnoreRule, localPathFor, UnsafePathError } from './paths.js';
import { withLocalCasing } from './local-casing.js';
import { planChanges, type Plan, type PlannedMove } from './plan-changes.js';
import type { ListedEntry } from './records.js';
import type { IndexView } from './index-reads.js';
import type { ApplyInput, PendingBatch } from './sync-store.js';
import { assertPostSize, markdownEntryBuilder, mirrorFolder, stagingFolder, type SyncDeps } from './sync-deps.js';
import { isFencedError } from '../redis/scripts.js';
import { SyncError } from './sync-failure.js';
import type { HandedQueue } from './download-queue.js';
import { mtimeFor } from './write-file.js';

export interface ApplyOutput {
  removed: number;
  moved: number;
  folders: number;
  queued: number;
  refused: number;
  /** The download queue as this step's commit left it, when small enough to hand over (see SyncStore.commitPlan). */
  queue?: HandedQueue;
}

/**
 * `applying`: the instant changes (deletions, moves, folders, ignore/un-ignore) happen on disk and
 * in the entry store at once; downloads are queued; then one script commits all of it with the
 * cursor. Every local effect is idempotent, so a restart before the commit simply applies the same
 * batch again.
 */
export async function applyChanges(accountId: string, signal: AbortSignal, deps: SyncDeps, handedInput?: ApplyInput): Promise<ApplyOutput> {
  // A stopped actor (lost lease, watchdog) must stop touching the disk, and a process that lost the
  // account while paused must not touch it at all: each phase of disk changes starts with a fenced check.
  let touchedDisk = false;
  /** `moves`: how far this page's moves have got, recorded by the same fenced round trip (apply-moves.lua). */
  const checkpoint = async (moves?: 'staging' | 'placed') => {
    if (signal.aborted) throw new SyncError({ kind: 'internal', message: 'applying stopped', at: deps.clock.now(), jitter: deps.random() });
    try {
      if (moves) await deps.store.markMoves(accountId, moves, batch.pageId!, rules);
      else await deps.store.assertOwner(accountId);
    } catch (error) {
      // Changed the mirror, then lost the account: the new owner must look at the disk again.
      if (touchedDisk && isFencedError(error)) deps.requestReconcile(accountId, 'changed the mirror while applying, then found the account taken over');
      throw error;
    }
    touchedDisk = true;
  };
  const log = deps.log.child({ accountId, step: 'applying' });
  // Handed over by the listing's last page when this step follows it under the same lease.
  const { batch, index, ignore: patterns } = handedInput ?? (await deps.store.loadApplyInput(accountId));
  const empty = { removed: 0, moved: 0, folders: 0, queued: 0, refused: 0 };
  if (!batch.pageId) return empty; // already committed (a replay after a restart)
  const root = mirrorFolder(deps.dataDir, accountId);
  const { entries, plan, rules } = planBatch(batch, index, patterns, root);
  for (const refused of plan.refused) log.warn(refused, 'refused a Dropbox path');

  // A fenced check before each phase that changes the disk (and only those: each costs a round trip).
  const diskWork = plan.moves.length + plan.removals.length + plan.folders.length > 0;
  const staging = stagingFolder(deps.dataDir, accountId);
  // Staging and removing are safe to repeat until the moves are placed, and only until then: a
  // replay after it would stage the files already moved onto the old paths (a swap) and remove
  // files already moved into place. So once they are, the page says so, and a replay only places.
  let staged: PlannedMove[];
  if (batch.movesPlaced) {
    staged = await placedBefore(plan.moves, root, staging);
  } else {
    if (diskWork) await checkpoint(plan.moves.length ? 'staging' : undefined);
    // The mirror's folder exists from the first (full) listing on; a download makes its own folders.
    // Not asking again on every run saves a thread-pool call on the path of every one-file change.
    if (diskWork || batch.mode === 'full') await mkdir(root, { recursive: true });
    staged = await stageMoves(plan.moves, root, staging);
    // A moved post's entry waits aside while the removals run, as its file does in staging: its old
    // path is usually removed, and so may be its new one (deleted, then the file moved there).
    for (const move of plan.moves) await parkEntry(move, deps, accountId);
    if (plan.removals.length) await checkpoint();
    for (const path of plan.removals) {
      const record = index.files.get(path);
      const display = record?.pathDisplay ?? entries.find((e) => e.pathLower === path)?.pathDisplay ?? index.queue.get(path)?.pathDisplay;
      const local = display ? safeLocalPath(root, display) : null;
      if (local) await rm(local, { recursive: true, force: true });
      // Dropping what is under a path walks every entry of the account in Redis: a file (indexed,
      // queued or ignored) has nothing under it.
      const isFile = record ? record.kind === 'file' : index.queue.has(path) || index.ignored.has(path);
      const dropped = isFile ? await deps.entries.drop(accountId, path) : await deps.entries.dropUnder(accountId, path);
      if (display) deps.events.report('fileRemoved', { accountId, path: display });
      if (dropped) deps.events.report('entryDropped', { accountId, path: display ?? path });
    }
  }
  if (plan.moves.length && !batch.movesPlaced) await checkpoint('placed');
  else if (plan.folders.length || staged.length) await checkpoint();
  for (const folder of plan.folders) await mkdir(localPathFor(root, folder.pathDisplay), { recursive: true });
  // Every parked entry arrives, a lost move's too (its file comes with a download).
  for (const move of plan.moves) await unparkEntry(move, deps, accountId);
  for (const move of staged) {
    // Its entry could not be built anew: the download step takes it from the file in place (no
    // download: the bytes on disk match), and sets it aside, or retries, as for any post.
    if ((await finishMove(move, root, staging, deps, accountId)) === 'build again') queueAgain(plan, move);
  }
  const lost = plan.moves.filter((move) => !staged.includes(move));
  if (lost.length) patchLostMoves(plan, lost);

  // The commit itself is fenced: no separate check before it.
  if (signal.aborted) await checkpoint();
  const committed = await deps.store.commitPlan(accountId, batch.pageId, batch.entries.length, plan.index, rules).catch((error: unknown) => {
    if (touchedDisk && isFencedError(error)) deps.requestReconcile(accountId, 'changed the mirror while applying, then found the account taken over');
    throw error;
  });
  const output = { removed: plan.removals.length, moved: staged.length, folders: plan.folders.length, queued: plan.index.queue.set.length, refused: plan.refused.length };
  log.info(output, 'applied');
  deps.events.report('queued', { accountId, total: output.queued });
  if (!committed.queue) return output;
  const notInIndex = new Set(batch.mode === 'continue' ? plan.downloads.filter((item) => !index.files.has(item.pathLower)).map((item) => item.pathLower) : []);
  return { ...output, queue: { items: committed.queue, notInIndex } };
}

/**
 * What the batch means locally, against the index as read (all of it, or the part the batch can
 * touch: index-reads.ts): the entries with their local casing, the plan, and the ignore rules as
 * the commit records them. Pure; the targeted read's tests plan through it too.
 */
export function planBatch(batch: Pick<PendingBatch, 'entries' | 'mode' | 'ignoreRules'>, index: IndexView, patterns: readonly string[], root: string): { entries: ListedEntry[]; plan: Plan; rules: string } {
  const rules = JSON.stringify(patterns);
  const entries = withLocalCasing(batch.entries, index.files);
  const plan = planChanges({
    entries,
    ...index,
    isIgnored: createIgnoreRule(patterns),
    unsafeReason: (path) => {
      try {
        localPathFor(root, path);
        return null;
      } catch (error) {
        if (error instanceof UnsafePathError) return error.reason;
        throw error;
      }
    },
    full: batch.mode === 'full',
    rulesChanged: batch.ignoreRules !== null && batch.ignoreRules !== rules,
  });
  return { entries, plan, rules };
}

const stagedName = (move: PlannedMove) => encodeURIComponent(move.to.id);

/**
 * Moves go through a staging folder: the source leaves before the removals run (a moved file's old
 * folder is usually deleted in the same batch) and arrives after them (its new folder may have
 * been deleted and re-created). Replays find the file already staged, or already arrived.
 */
async function stageMoves(moves: PlannedMove[], root: string, staging: string): Promise<PlannedMove[]> {
  const ready: PlannedMove[] = [];
  if (moves.length) await mkdir(staging, { recursive: true });
  for (const move of moves) {
    const source = localPathFor(root, move.from.pathDisplay);
    const parked = join(staging, stagedName(move));
    if (await isFile(parked)) { ready.push(move); continue; }
    if (await isFile(source)) {
      await rename(source, parked);
      ready.push(move);
      continue;
    }
    if (!move.download && (await isFile(localPathFor(root, move.to.pathDisplay)))) ready.push(move); // arrived before a crash
  }
  return ready;
}

/**
 * The moves an apply cut short had placed (apply-moves.lua), as stageMoves would have
 * returned them: each file is in staging still, or already at its new path.
 */
async function placedBefore(moves: PlannedMove[], root: string, staging: string): Promise<PlannedMove[]> {
  const placed: PlannedMove[] = [];
  for (const move of moves) {
    if ((await isFile(join(staging, stagedName(move)))) || (await isFile(localPathFor(root, move.to.pathDisplay)))) placed.push(move);
  }
  return placed;
}

async function finishMove(move: PlannedMove, root: string, staging: string, deps: SyncDeps, accountId: string): Promise<'done' | 'build again'> {
  const target = localPathFor(root, move.to.pathDisplay);
  const parked = join(staging, stagedName(move));
  if (await isFile(parked)) {
    await mkdir(dirname(target), { recursive: true });
    await rename(parked, target);
    const mtime = mtimeFor(move.to.clientModified, deps.clock.now());
    await utimes(target, mtime, mtime);
  }
  // The entry kept its id; its title and html are rebuilt from the new name (a .txt post's title is
  // its file name, a .md renamed .txt is rendered as text). Changed content comes with the download.
  const builder = deps.entryBuilder ?? markdownEntryBuilder;
  if (builder.isPost(move.to.pathLower) && !move.download) {
    const kept = await deps.entries.get(accountId, move.to.pathLower);
    let built: { title: string; html: string };
    try {
      assertPostSize(builder, move.to.pathDisplay, move.to.size);
      built = builder.build({ path: move.to.pathDisplay, content: await readFile(target) });
    } catch (error) {
      // The move is placed: a step failed here would fail the same way on every retry, and the page
      // (and every change after it) would never be committed. The entry keeps its id, title and
      // html until the download step builds it (or sets the post aside, shown in the status).
      deps.log.warn({ accountId, step: 'applying', path: move.to.pathDisplay, err: (error as Error).message }, 'a moved post\'s entry could not be built anew here: queued for the download step');
      return 'build again';
    }
    const { title, html } = built;
    const updated = kept?.updated ?? Date.parse(move.to.serverModified);
    const result = await deps.entries.set(accountId, { pathLower: move.to.pathLower, path: move.to.pathDisplay, title, html, updated }, { now: deps.clock.now() });
    if (result.applied) deps.events.report('entrySet', { accountId, entry: result.entry });
  }
  return 'done';
}

/**
 * Where moved posts' entries wait while the removals run: no Dropbox path_lower is at or under it
 * (it has capitals), so no removal reaches it. A move's place is named by its destination, and
 * nothing is listed until the page is committed (apply-moves.lua), so a replay of the page finds the
 * entry where the cut-short apply left it.
 */
const PARKED_ENTRIES = '/.MAILROOM-MOVING';
const parkedAt = (move: PlannedMove) => `${PARKED_ENTRIES}${move.to.pathLower}`;

const keepsEntry = (move: PlannedMove, deps: SyncDeps) => {
  const builder = deps.entryBuilder ?? markdownEntryBuilder;
  return builder.isPost(move.from.pathLower) && builder.isPost(move.to.pathLower);
};

/** A moved post keeps its entry (parked until unparkEntry); a post renamed to a non-post name stops being an entry. */
async function parkEntry(move: PlannedMove, deps: SyncDeps, accountId: string): Promise<void> {
  const builder = deps.entryBuilder ?? markdownEntryBuilder;
  if (keepsEntry(move, deps)) {
    await deps.entries.rename(accountId, move.from.pathLower, { pathLower: parkedAt(move), path: move.to.pathDisplay });
  } else if (builder.isPost(move.from.pathLower) && (await deps.entries.drop(accountId, move.from.pathLower))) {
    deps.events.report('entryDropped', { accountId, path: move.from.pathDisplay });
  }
}

/** The parked entry at its new path, with its id, created and updated. */
async function unparkEntry(move: PlannedMove, deps: SyncDeps, accountId: string): Promise<void> {
  if (keepsEntry(move, deps)) await deps.entries.rename(accountId, parkedAt(move), { pathLower: move.to.pathLower, path: move.to.pathDisplay });
}

/**
 * A move whose source vanished (deleted by hand, say) becomes a plain download, and the index must
 * not claim the file is at its new path until that download lands.
 */
function patchLostMoves(plan: Plan, lost: PlannedMove[]): void {
  for (const move of lost) {
    plan.index.files.set = plan.index.files.set.filter(([path]) => path !== move.to.pathLower);
    plan.index.fileIds.set = plan.index.fileIds.set.filter(([id]) => id !== move.to.id);
    queueAgain(plan, move);
  }
}

/** The move's destination on the download queue that the plan commits (once). */
function queueAgain(plan: Plan, move: PlannedMove): void {
  if (!plan.index.queue.set.some(([path]) => path === move.to.pathLower)) plan.index.queue.set.push([move.to.pathLower, move.to]);
}

function safeLocalPath(root: string, display: string): string | null {
  try {
    return localPathFor(root, display);
  } catch (error) {
    if (error instanceof UnsafePathError) return null; // never written, so nothing to remove
    throw error;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
