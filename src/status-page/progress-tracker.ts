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

/**
 * Per-account progress of the sync runs, fed by engine events: reset when a run starts, the total
 * from `queued`, files and bytes from `fileSynced`. Pure and in memory: it knows only the actors
 * this process runs, and forgets nothing but what `forget` is told (one small record per account).
 */
export class ProgressTracker {
  private readonly runs = new Map<string, RunProgress>();

  constructor(private readonly now: () => number = Date.now) {}

  get(accountId: string): RunProgress | null {
    const run = this.runs.get(accountId);
    return run ? { ...run } : null;
  }

  forget(accountId: string): void {
    this.runs.delete(accountId);
  }

  syncStarted({ accountId }: Payload<'syncStarted'>): void {
    this.runs.set(accountId, { startedAt: this.now(), finishedAt: null, total: null, done: 0, downloaded: 0, bytes: 0, failed: 0 });
  }

  state({ accountId, from, to }: Payload<'state'>): void {
    // `syncStarted` covers idle -> fetching; a webhook during a run loops finishing -> fetching: a new run.
    if (to === 'fetching' && from === 'finishing') this.syncStarted({ accountId });
    const run = this.runs.get(accountId);
    if (!run) return;
    if (to === 'idle') run.finishedAt = this.now();
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
    let run = this.runs.get(accountId);
    if (!run || run.finishedAt !== null) {
      run = { startedAt: this.now(), finishedAt: null, total: null, done: 0, downloaded: 0, bytes: 0, failed: 0 };
      this.runs.set(accountId, run);
    }
    return run;
  }
}
