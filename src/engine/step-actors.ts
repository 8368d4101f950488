import { setMaxListeners } from 'node:events';
import { fromPromise } from 'xstate';
import type { FinishOutput, StepInput } from '../../machines/account.machine.js';
import { applyChanges } from '../sync/apply-changes.js';
import { downloadQueue, type HandedQueue } from '../sync/download-queue.js';
import { listChanges } from '../sync/list-changes.js';
import type { SyncDeps } from '../sync/sync-deps.js';
import { SyncError, type FailureKind } from '../sync/sync-failure.js';
import { isRedisUnavailable } from '../redis/redis-errors.js';
import { isFencedError } from '../redis/scripts.js';
import { sleep } from './clock.js';
import { Handover } from './handover.js';
import type { ApplyInput } from '../sync/sync-store.js';

/** What a step hands the next one (see Handover). */
export interface StepHandovers {
  applyInputs: Handover<ApplyInput>;
  queues: Handover<HandedQueue>;
}

export function newStepHandovers(): StepHandovers {
  return { applyInputs: new Handover(), queues: new Handover() };
}

/** The account's actor left memory: nothing handed over for it may be used by a later one. */
export function forgetHandovers(handovers: StepHandovers, accountId: string): void {
  handovers.applyInputs.forget(accountId);
  handovers.queues.forget(accountId);
}

/**
 * The real implementations of the machine's named actors. Each one turns whatever it failed with
 * into a SyncError stamped with the engine's clock, which the machine turns into a persisted
 * backoff deadline.
 */
export function createStepActors(deps: SyncDeps, handovers: StepHandovers = newStepHandovers()) {
  const step = <T>(name: string, run: (input: StepInput, signal: AbortSignal, deps: SyncDeps, token: string) => Promise<T>) =>
    fromPromise<T, StepInput>(async ({ input, signal }) => {
      // Each concurrent download lane waits on this signal in its retries: more than ten is normal.
      setMaxListeners(0, signal);
      const owned = deps.own(input.accountId);
      try {
        // At once for a run that holds its slot; an actor restored mid-run (a boot, the reaper)
        // waits for one here, so a restart after a crash mid-storm does not run every account at once.
        await deps.runSlot(input.accountId, signal);
        return await run(input, signal, { ...deps, store: owned.store, entries: owned.entries, mailbox: owned.mailbox }, owned.token);
      } catch (error) {
        if (isFencedError(error)) deps.lostOwnership(input.accountId, `${name}: a write was refused (FENCED)`, owned.token);
        const failure = classify(error, deps);
        if (failure.failure.kind === 'internal' && !signal.aborted) {
          deps.log.error({ accountId: input.accountId, step: name, err: error }, 'step failed unexpectedly');
        } else if (!signal.aborted) {
          deps.log.warn({ accountId: input.accountId, step: name, kind: failure.failure.kind, message: failure.message }, 'step failed');
        }
        if (!signal.aborted) deps.events.report('stepFailed', { accountId: input.accountId, step: name, kind: failure.failure.kind, message: failure.message });
        throw failure;
      }
    });

  return {
    listChanges: step<unknown>('listChanges', async (input, signal, owned, token) => {
      handovers.applyInputs.forget(input.accountId);
      const { applyInput, ...output } = await listChanges(input.accountId, signal, owned);
      if (applyInput) handovers.applyInputs.give(input.accountId, token, applyInput);
      return output;
    }),
    applyChanges: step<unknown>('applyChanges', async (input, signal, owned, token) => {
      handovers.queues.forget(input.accountId);
      const { queue, ...output } = await applyChanges(input.accountId, signal, owned, handovers.applyInputs.take(input.accountId, token));
      if (queue) handovers.queues.give(input.accountId, token, queue);
      return output;
    }),
    downloadQueue: step<unknown>('downloadQueue', (input, signal, owned, token) => downloadQueue(input.accountId, signal, owned, handovers.queues.take(input.accountId, token))),
    finishRun: step<FinishOutput>('finishRun', async (input, _signal, owned): Promise<FinishOutput> => ({ next: await owned.mailbox.finishRun(input.accountId), at: deps.clock.now() })),
    waitUntil: fromPromise<void, { until: number; accountId?: string }>(async ({ input, signal }) => {
      await sleep(deps.clock, input.until - deps.clock.now(), signal);
      // A retry is a run: it waits its turn for a run slot as a new one does. (A snapshot persisted
      // before the input named the account resumes without waiting.)
      if (input.accountId) await deps.runSlot(input.accountId, signal);
    }),
  };
}

const FS_CODES = new Set(['EACCES', 'EPERM', 'ENOSPC', 'EROFS', 'EDQUOT', 'EIO', 'ENOTDIR', 'EISDIR', 'EEXIST', 'EMFILE', 'ENAMETOOLONG', 'ENOENT']);

function classify(error: unknown, deps: SyncDeps): SyncError {
  if (error instanceof SyncError) return error;
  const e = error as { message?: string; code?: string; name?: string } | null;
  const message = e?.message ?? String(error);
  let kind: FailureKind = 'internal';
  if (isRedisUnavailable(error)) kind = 'redis';
  else if (e?.code && FS_CODES.has(e.code)) kind = 'filesystem';
  return new SyncError({ kind, message, at: deps.clock.now(), jitter: deps.random() }, { cause: error });
}
