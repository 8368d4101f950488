import { assign, fromPromise, setup } from 'xstate';
import { retryDelayMs, type SyncFailure, toSyncFailure } from '../src/sync/sync-failure.js';

/**
 * The actor of one Dropbox account. It is data: every effect is a named actor whose real
 * implementation the engine provides (`machine.provide({ actors })`), so tests can provide others.
 *
 * Durable by construction:
 * - no `after` delays (XState does not persist them): the retry deadline is in context and a named
 *   `waitUntil` actor sleeps until it, so a restored `backoff` resumes with the time that is left;
 * - every invoke is named in `setup`, so restoring a snapshot recreates its child;
 * - every state has a way out: each invoke has `onError` leading to `backoff`, and `backoff` always
 *   ends (the deadline passes, or a RESYNC cuts it short); credentials Dropbox refused lead to
 *   `awaitingRelink` instead, which a re-link, a resync or a wake ends (a retry on a timer would
 *   be refused again, so none is made: the account rests, passivated, until then, and the
 *   host's sweep wakes it rarely to try once more, in case the refusal was Dropbox's own);
 * - no step that keeps failing holds back the account's other changes: a failed download lists
 *   again before it is retried (and a file no retry can write is set aside by the step itself);
 * - the file lists (changes, download queue) live in Redis, not here: context stays small.
 */

export type RetryableState = 'fetching' | 'applying' | 'downloading' | 'finishing';

export interface AccountContext {
  accountId: string;
  /** Consecutive failures; 0 after any step succeeds. */
  attempt: number;
  /** Epoch ms at which `backoff` ends (persisted, so a restart keeps it). */
  retryAt: number | null;
  /** Where `backoff` returns to: effects are idempotent, so the failed step simply runs again. */
  retryState: RetryableState | null;
  lastError: SyncFailure | null;
  lastSyncedAt: number | null;
  /** Completed runs (a run = list, apply, download, finish). */
  runs: number;
}

export type AccountEvent = { type: 'WEBHOOK' } | { type: 'RESYNC' };

export interface AccountInput {
  accountId: string;
}

export interface StepInput {
  accountId: string;
}

export interface FinishOutput {
  /** `again`: a webhook arrived during the run, list once more; `idle`: the mailbox is empty. */
  next: 'again' | 'idle';
  at: number;
}

function notProvided<TOutput>(name: string) {
  return fromPromise<TOutput, StepInput>(async () => {
    throw new Error(`actor ${name} was not provided to the account machine`);
  });
}

function failedStep(state: RetryableState) {
  return [
    { guard: 'isAuthFailure' as const, target: 'awaitingRelink' as const, actions: { type: 'recordAuthFailure' as const, params: { state } } },
    { target: 'backoff' as const, actions: { type: 'recordFailure' as const, params: { state } } },
  ];
}

/**
 * Back to the step that failed, by the rule `backoff` follows: a listed page is applied before
 * anything is listed after it, and a finished run is recorded before the next one starts; anything
 * else lists first (a failed download too: the changes that arrived meanwhile are applied and
 * queued, so one file that keeps failing never holds the account's other changes back).
 */
function retryFailedStep<TActions>(actions: TActions) {
  return [
    { guard: { type: 'isRetrying' as const, params: 'applying' as const }, target: 'applying' as const, actions },
    { guard: { type: 'isRetrying' as const, params: 'finishing' as const }, target: 'finishing' as const, actions },
    { target: 'fetching' as const, actions },
  ];
}

export const accountMachine = setup({
  types: {
    context: {} as AccountContext,
    events: {} as AccountEvent,
    input: {} as AccountInput,
  },
  actors: {
    listChanges: notProvided<unknown>('listChanges'),
    applyChanges: notProvided<unknown>('applyChanges'),
    downloadQueue: notProvided<unknown>('downloadQueue'),
    finishRun: notProvided<FinishOutput>('finishRun'),
    waitUntil: fromPromise<void, { until: number; accountId?: string }>(async () => {
      throw new Error('actor waitUntil was not provided to the account machine');
    }),
  },
  guards: {
    isDirty: ({ event }) => (event as unknown as { output?: FinishOutput }).output?.next === 'again',
    isRetrying: ({ context }, state: RetryableState) => context.retryState === state,
    isAuthFailure: ({ event }) => toSyncFailure((event as unknown as { error: unknown }).error).kind === 'auth',
  },
  actions: {
    // A retry that passes through other steps first (a failed download lists again before it is
    // retried) counts as succeeding only once the step that failed does: until then its attempts
    // keep adding up, so its backoff keeps growing.
    stepSucceeded: assign(({ context }, params: { state: RetryableState }) =>
      context.retryState === null || context.retryState === params.state ? { attempt: 0, retryState: null, retryAt: null } : {},
    ),
    cancelRetry: assign({ attempt: 0, retryState: null, retryAt: null }),
    recordFailure: assign(({ context, event }, params: { state: RetryableState }) => {
      const failure = toSyncFailure((event as unknown as { error: unknown }).error);
      const attempt = context.attempt + 1;
      return {
        attempt,
        lastError: failure,
        retryState: params.state,
        retryAt: failure.at + retryDelayMs(attempt, failure),
      };
    }),
    // No deadline: only new credentials (or an operator) can make the step succeed.
    recordAuthFailure: assign(({ context, event }, params: { state: RetryableState }) => ({
      attempt: context.attempt + 1,
      lastError: toSyncFailure((event as unknown as { error: unknown }).error),
      retryState: params.state,
      retryAt: null,
    })),
    // New credentials start the failed step's count afresh; it still counts as retried until it succeeds.
    resumeAfterRelink: assign({ attempt: 0, retryAt: null }),
    runCompleted: assign(({ context, event }) => ({
      runs: context.runs + 1,
      lastSyncedAt: (event as unknown as { output: FinishOutput }).output.at,
      lastError: null,
    })),
  },
}).createMachine({
  id: 'account',
  initial: 'idle',
  context: ({ input }) => ({
    accountId: input.accountId,
    attempt: 0,
    retryAt: null,
    retryState: null,
    lastError: null,
    lastSyncedAt: null,
    runs: 0,
  }),
  states: {
    idle: {
      on: {
        WEBHOOK: 'fetching',
        RESYNC: 'fetching',
      },
    },
    fetching: {
      invoke: {
        id: 'listChanges',
        src: 'listChanges',
        input: ({ context }) => ({ accountId: context.accountId }),
        onDone: { target: 'applying', actions: { type: 'stepSucceeded', params: { state: 'fetching' } } },
        onError: failedStep('fetching'),
      },
    },
    applying: {
      invoke: {
        id: 'applyChanges',
        src: 'applyChanges',
        input: ({ context }) => ({ accountId: context.accountId }),
        onDone: { target: 'downloading', actions: { type: 'stepSucceeded', params: { state: 'applying' } } },
        onError: failedStep('applying'),
      },
    },
    downloading: {
      invoke: {
        id: 'downloadQueue',
        src: 'downloadQueue',
        input: ({ context }) => ({ accountId: context.accountId }),
        onDone: { target: 'finishing', actions: { type: 'stepSucceeded', params: { state: 'downloading' } } },
        onError: failedStep('downloading'),
      },
    },
    finishing: {
      invoke: {
        id: 'finishRun',
        src: 'finishRun',
        input: ({ context }) => ({ accountId: context.accountId }),
        onDone: [
          { guard: 'isDirty', target: 'fetching', actions: [{ type: 'stepSucceeded', params: { state: 'finishing' } }, 'runCompleted'] },
          { target: 'idle', actions: [{ type: 'stepSucceeded', params: { state: 'finishing' } }, 'runCompleted'] },
        ],
        onError: failedStep('finishing'),
      },
      on: {
        // A wake can only reach a non-idle actor in one window: the finish step already set the
        // mailbox idle, a webhook woke it, and the machine has not moved to idle yet. Asking the
        // mailbox again (it now says dirty) turns that wake into one more run instead of a lost one.
        WEBHOOK: { target: 'finishing', reenter: true },
        RESYNC: { target: 'finishing', reenter: true },
      },
    },
    backoff: {
      invoke: {
        id: 'waitUntil',
        src: 'waitUntil',
        // The account too: leaving backoff starts a run again, which waits for a run slot (the host's).
        input: ({ context }) => ({ until: context.retryAt ?? 0, accountId: context.accountId }),
        onDone: retryFailedStep([]),
        // A broken timer must not strand the account: retry the listing, which is always safe.
        onError: { target: 'fetching', actions: 'cancelRetry' },
      },
      on: {
        // An operator's resync (or a re-link) should not wait out a long backoff.
        RESYNC: { target: 'fetching', actions: 'cancelRetry' },
      },
    },
    awaitingRelink: {
      // Dropbox refused the account's credentials (revoked, expired, a scope missing). Nothing is
      // invoked and nothing is retried on a timer: the host passivates the actor like an idle one,
      // and the mailbox says `parked`, so webhooks only mark it dirty and neither the reaper, the
      // poll nor a boot wakes it. A re-link (which wakes it), an operator's resync or any wake ends
      // it; the sweep sends one, rarely (`parkedRecheckMs`), in case the refusal was Dropbox's own.
      on: {
        WEBHOOK: retryFailedStep('resumeAfterRelink'),
        RESYNC: retryFailedStep('resumeAfterRelink'),
      },
    },
  },
});

export type AccountMachine = typeof accountMachine;
export type AccountStateName = 'idle' | 'fetching' | 'applying' | 'downloading' | 'finishing' | 'backoff' | 'awaitingRelink';
export const ACCOUNT_STATES: readonly AccountStateName[] = ['idle', 'fetching', 'applying', 'downloading', 'finishing', 'backoff', 'awaitingRelink'];
/** States in which no run is going: the actor holds no run slot and is passivated once it has rested for the idle timeout. */
export const RESTING_STATES: readonly AccountStateName[] = ['idle', 'awaitingRelink'];
