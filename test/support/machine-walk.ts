import type { AnyMachineSnapshot } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { accountMachine, type AccountEvent, type FinishOutput } from '../../machines/account.machine.js';
import { SyncError } from '../../src/sync/sync-failure.js';

export interface ReachableState {
  /** e.g. "backoff (retryState downloading)", "awaitingRelink (retryState fetching)" */
  name: string;
  value: string;
  retryState: string | null;
  /** The events that reach it from the initial state. */
  events: string[];
  /** The persisted snapshot, JSON round-tripped. */
  snapshot: Record<string, any>;
}

/**
 * Every reachable state of the account machine (xstate/graph), with the path that reaches it.
 * Done/error events of the invoked actors are supplied so the guards (isDirty, isRetrying) can be
 * reached; states are told apart by value and retryState (context also counts runs and attempts,
 * which never ends). Failures are stamped at `failedAt`.
 */
export function walkReachableStates(accountId: string, failedAt: number): ReachableState[] {
  const failure = new SyncError({ kind: 'dropbox_unavailable', message: 'step failed', at: failedAt, jitter: 0 });
  const refused = new SyncError({ kind: 'auth', message: 'credentials refused', at: failedAt, jitter: 0 });
  const events = [
    { type: 'WEBHOOK' },
    { type: 'RESYNC' },
    ...['listChanges', 'applyChanges', 'downloadQueue'].map((id) => ({ type: `xstate.done.actor.${id}`, output: undefined })),
    { type: 'xstate.done.actor.finishRun', output: { next: 'again', at: failedAt } satisfies FinishOutput },
    { type: 'xstate.done.actor.finishRun', output: { next: 'idle', at: failedAt } satisfies FinishOutput },
    { type: 'xstate.done.actor.waitUntil', output: undefined },
    ...['listChanges', 'applyChanges', 'downloadQueue', 'finishRun'].map((id) => ({ type: `xstate.error.actor.${id}`, error: failure })),
    ...['listChanges', 'applyChanges', 'downloadQueue', 'finishRun'].map((id) => ({ type: `xstate.error.actor.${id}`, error: refused })),
    { type: 'xstate.error.actor.waitUntil', error: new Error('timer broke') },
  ] as unknown as AccountEvent[];
  const paths = getShortestPaths(accountMachine, {
    input: { accountId },
    events,
    // An unhandled xstate.error.actor.* event errors a machine: offer each state only what it handles.
    filterEvents: (snapshot, event) => snapshot.can(event),
    serializeState: (snapshot) => JSON.stringify([snapshot.value, snapshot.status, snapshot.context.retryState]),
    limit: 1_000,
  });
  return paths.map((path) => {
    const state = path.state as AnyMachineSnapshot;
    const retryState = state.context.retryState as string | null;
    return {
      name: `${String(state.value)}${retryState ? ` (retryState ${retryState})` : ''}`,
      value: String(state.value),
      retryState,
      events: path.steps.slice(1).map((step) => step.event.type.replace(/^xstate\./, '')),
      snapshot: JSON.parse(JSON.stringify(accountMachine.getPersistedSnapshot(state))) as Record<string, any>,
    };
  });
}
