/**
 * Side check behind figure 6 (not one of the figures, not in `npm run bench`): what the
 * account machine itself costs per run, with steps that do nothing, so that only XState's work is
 * left. Three parts of a stormed account's run: restoring a passivated actor from its snapshot
 * (create, start, stop), the run's five transitions with a child actor invoked per step, and the
 * persisted snapshot the host serialises after each transition. Alternating twice:
 *   npx tsx bench/xstate-cost.ts
 */
import { createActor, fromPromise, type SnapshotFrom } from 'xstate';
import { accountMachine, type AccountMachine, type FinishOutput, type StepInput } from '../machines/account.machine.js';

const done = fromPromise<unknown, StepInput>(async () => ({}));
const machine = accountMachine.provide({
  actors: {
    listChanges: done,
    applyChanges: done,
    downloadQueue: done,
    finishRun: fromPromise<FinishOutput, StepInput>(async () => ({ next: 'idle', at: 1 })),
    waitUntil: fromPromise<void, { until: number }>(async () => {}),
  },
});

/** One run, idle → fetching → … → idle, on `actor`; `persist` serialises each transition's snapshot as the host does. */
function run(actor: ReturnType<typeof createActor<AccountMachine>>, persist: boolean): Promise<void> {
  return new Promise((resolve) => {
    let left = true;
    const subscription = actor.subscribe((snapshot) => {
      if (persist) JSON.stringify(actor.getPersistedSnapshot());
      if (snapshot.value !== 'idle') left = false;
      else if (!left) {
        subscription.unsubscribe();
        resolve();
      }
    });
    actor.send({ type: 'WEBHOOK' });
  });
}

const kept = createActor(machine, { input: { accountId: 'dbid:xstate-cost' } });
kept.start();
const idleSnapshot = kept.getPersistedSnapshot() as SnapshotFrom<AccountMachine>;

const parts: Record<string, () => Promise<void> | void> = {
  'restore a passivated actor (create, start, stop)': () => {
    const actor = createActor(machine, { snapshot: idleSnapshot, input: { accountId: 'dbid:xstate-cost' } });
    actor.start();
    actor.stop();
  },
  'a run of five transitions, steps doing nothing': () => run(kept, false),
  'the same run, each transition\'s persisted snapshot serialised': () => run(kept, true),
};

const ROUNDS = 10_000;
for (let round = 0; round < 2; round++) {
  for (const [name, part] of Object.entries(parts)) {
    for (let i = 0; i < 1_000; i++) await part();
    const started = process.hrtime.bigint();
    for (let i = 0; i < ROUNDS; i++) await part();
    console.log(`${name}: ${(Number(process.hrtime.bigint() - started) / ROUNDS / 1_000).toFixed(1)} µs`);
  }
}
kept.stop();
