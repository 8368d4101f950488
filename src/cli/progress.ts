/**
 * The progress of an initial sync, as `link --wait` shows it. Pure: the command polls the status
 * and feeds it here; tests check the rendering directly.
 */

export interface ProgressCounts {
  /** Downloads finished since waiting began. */
  done: number;
  /** Downloads known so far: finished plus pending (grows when a listing queues more). */
  total: number;
}

/** The counts after the server reported `pending` queued downloads (it only ever reports the queue). */
export function advanceProgress(counts: ProgressCounts & { pending: number }, pending: number): ProgressCounts & { pending: number } {
  const done = counts.done + Math.max(0, counts.pending - pending);
  return { done, total: done + pending, pending };
}

export const INITIAL_PROGRESS: ProgressCounts & { pending: number } = { done: 0, total: 0, pending: 0 };

/** `[#########···········]` with `width` cells inside the brackets; an empty total is an empty bar. */
export function renderProgressBar(done: number, total: number, width = 24): string {
  const cells = Math.max(1, Math.floor(width));
  const ratio = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.floor(ratio * cells);
  return `[${'#'.repeat(filled)}${'-'.repeat(cells - filled)}]`;
}

export function percent(done: number, total: number): number {
  return total > 0 ? Math.floor((Math.min(done, total) / total) * 100) : 0;
}

export interface SyncProgressView extends ProgressCounts {
  accountId: string;
  state: string;
  elapsedMs: number;
}

/**
 * One line: `dbid:x  downloading  [######------]  12/40 files  30%  5s`. Before anything is queued
 * (listing) the bar is left out: there is nothing to count yet.
 */
export function renderSyncProgress(view: SyncProgressView, width = 24): string {
  const elapsed = formatDuration(view.elapsedMs);
  if (view.total === 0) return `${view.accountId}  ${view.state}  ${view.state === 'idle' ? 'nothing to download' : 'listing…'}  ${elapsed}`;
  const noun = view.total === 1 ? 'file' : 'files';
  return `${view.accountId}  ${view.state}  ${renderProgressBar(view.done, view.total, width)}  ${view.done}/${view.total} ${noun}  ${percent(view.done, view.total)}%  ${elapsed}`;
}

/** `850ms`, `12s`, `3m05s`, `1h02m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/**
 * Whether a non-terminal output (a log, a pipe) gets a new line: the state changed or the progress
 * crossed a tenth. A terminal redraws one line instead and needs no such filter.
 */
export function worthALine(previous: { state: string; done: number; total: number } | undefined, next: { state: string; done: number; total: number }): boolean {
  if (!previous) return true;
  if (previous.state !== next.state) return true;
  return Math.floor(percent(previous.done, previous.total) / 10) !== Math.floor(percent(next.done, next.total) / 10);
}
