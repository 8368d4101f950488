import type { EngineEventMap } from '../engine/engine-events.js';

type Payload<K extends keyof EngineEventMap> = EngineEventMap[K][0];

/** How far the current (or the last) run of one account has got, as seen by this process. */
export interface RunProgress {
  /** Epoch ms the run started (the first `syncStarted` or a dirty `finishing` -> `fetching`). */
  startedAt: number;
  /** Epoch ms the account went back to `idle`; null while the run goes on. */
  finishedAt: number | null;
  /** Files the applying step queued; null until it reports. */
  total: number | null;
  /** Files on disk with their listed content (downloaded or found unchanged). */
  done: number;
  /** Of `done`, how many were actually downloaded. */
  downloaded: number;
  /** Bytes downloaded in this run. */
  bytes: number;
  /** Downloads that failed in this run (retried after the backoff). */
  failed: number;
}

/** Finished runs kept for the page by default: the most recent ones. */
export const DEFAULT_FINISHED_RUNS = 1_000;

/**
 * Per-account progress of the sync runs, fed by engine events: reset when a run starts, the total
 * from `queued`, files and bytes from `fileSynced`. Pure and in memory: it knows only the actors
 * this process runs. Runs going on are all kept; of the finished ones only the last
 * `maxFinishedRuns`, because a record per account ever synced here grows with every linked account
 * while the actors themselves are passivated (docs/benchmarks.md, figure 7). An account whose last
 * run was pushed out shows "no run seen yet" until its next run.
 */
export class ProgressTracker {
  private readonly running = new Map<string, RunProgress>();
  /** Oldest finished first (a Map iterates in insertion order), so eviction takes the first key. */
  private readonly finished = new Map<string, RunProgress>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly maxFinishedRuns = DEFAULT_FINISHED_RUNS,
  ) {}

  get(accountId: string): RunProgress | null {
    const run = this.running.get(accountId) ?? this.finished.get(accountId);
    return run ? { ...run } : null;
  }

  /** Runs held (going on, finished): what the tracker costs. */
  get size(): { running: number; finished: number } {
    return { running: this.running.size, finished: this.finished.size };
  }

  forget(accountId: string): void {
    this.running.delete(accountId);
    this.finished.delete(accountId);
  }

  syncStarted({ accountId }: Payload<'syncStarted'>): void {
    this.finished.delete(accountId);
    this.running.set(accountId, { startedAt: this.now(), finishedAt: null, total: null, done: 0, downloaded: 0, bytes: 0, failed: 0 });
  }

  state({ accountId, from, to }: Payload<'state'>): void {
    // `syncStarted` covers idle -> fetching; a webhook during a run loops finishing -> fetching: a new run.
    if (to === 'fetching' && from === 'finishing') this.syncStarted({ accountId });
    if (to !== 'idle') return;
    const run = this.running.get(accountId);
    if (!run) return;
    run.finishedAt = this.now();
    this.running.delete(accountId);
    this.finished.set(accountId, run);
    while (this.finished.size > this.maxFinishedRuns) this.finished.delete(this.finished.keys().next().value!);
  }

  queued({ accountId, total }: Payload<'queued'>): void {
    const run = this.ensure(accountId);
    // A retried applying step re-plans from what is left: its total replaces the earlier one.
    run.total = total;
    run.done = 0;
    run.downloaded = 0;
    run.bytes = 0;
    run.failed = 0;
  }

  fileSynced({ accountId, bytes, downloaded }: Payload<'fileSynced'>): void {
    const run = this.ensure(accountId);
    run.done += 1;
    if (downloaded) {
      run.downloaded += 1;
      run.bytes += bytes;
    }
    if (run.total !== null && run.done > run.total) run.total = run.done;
  }

  downloadFailed({ accountId }: Payload<'downloadFailed'>): void {
    this.ensure(accountId).failed += 1;
  }

  /** A run this process did not see start (the page opened mid-run, or the actor moved here). */
  private ensure(accountId: string): RunProgress {
    let run = this.running.get(accountId);
    if (!run) {
      this.finished.delete(accountId);
      run = { startedAt: this.now(), finishedAt: null, total: null, done: 0, downloaded: 0, bytes: 0, failed: 0 };
      this.running.set(accountId, run);
    }
    return run;
  }
}
