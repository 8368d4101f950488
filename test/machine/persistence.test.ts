import { describe, expect, it } from 'vitest';
import { type AnyMachineSnapshot, createActor, fromPromise, SimulatedClock, type Snapshot } from 'xstate';
import { ACCOUNT_STATES, type AccountEvent, accountMachine, type FinishOutput, type StepInput } from '../../machines/account.machine.js';
import { idleRecordOf, idleSnapshot, SNAPSHOT_SCHEMA, type StoredActor, validateSnapshot } from '../../src/engine/actor-persistence.js';
import { sleep } from '../../src/engine/clock.js';
import { SyncError } from '../../src/sync/sync-failure.js';
import { walkReachableStates } from '../support/machine-walk.js';

/**
 * What the engine writes to Redis for an account actor, and what it can restore: the format per
 * state, the durable backoff deadline, a restore from every reachable state, and the snapshots
 * validateSnapshot must turn away before XState sees them.
 */

const T0 = 1_700_000_000_000;
const ACCOUNT = 'acc-1';
type Step = 'listChanges' | 'applyChanges' | 'downloadQueue' | 'finishRun';
type Outcome = 'ok' | { gate: Promise<void> } | { fail: 'rate_limited' | 'dropbox_unavailable' | 'auth'; retryAfterMs?: number };

/** The machine with engine-like fakes: steps throw SyncError stamped with `clock`, waitUntil sleeps on it. */
function machineWith(clock: SimulatedClock, script: Partial<Record<Step, Outcome[]>> = {}, calls: string[] = []) {
  async function perform(name: Step): Promise<void> {
    calls.push(`t+${clock.now() - T0} ${name}`);
    const outcome = script[name]?.shift() ?? 'ok';
    if (outcome === 'ok') return;
    if ('gate' in outcome) return outcome.gate;
    throw new SyncError({ kind: outcome.fail, message: `${name} failed`, at: clock.now(), jitter: 0, ...(outcome.retryAfterMs ? { retryAfterMs: outcome.retryAfterMs } : {}) });
  }
  return accountMachine.provide({
    actors: {
      listChanges: fromPromise<unknown, StepInput>(() => perform('listChanges')),
      applyChanges: fromPromise<unknown, StepInput>(() => perform('applyChanges')),
      downloadQueue: fromPromise<unknown, StepInput>(() => perform('downloadQueue')),
      finishRun: fromPromise<FinishOutput, StepInput>(async () => {
        await perform('finishRun');
        return { next: 'idle', at: clock.now() };
      }),
      waitUntil: fromPromise<void, { until: number }>(({ input, signal }) => sleep(clock, input.until - clock.now(), signal)),
    },
  });
}

function clockAt(ms: number): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(T0 + ms);
  return clock;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Starts an actor (fresh, or from a persisted snapshot) with an error observer, as AccountHost does. */
function start(machine: ReturnType<typeof machineWith>, snapshot?: unknown) {
  const errors: unknown[] = [];
  const actor = createActor(machine, snapshot ? { snapshot: snapshot as Snapshot<unknown> as never, input: { accountId: ACCOUNT } } : { input: { accountId: ACCOUNT } });
  actor.subscribe({ error: (error) => errors.push(error) });
  actor.start();
  return { actor, errors };
}

/** What the engine stores: the persisted snapshot after a trip through JSON (Redis holds a string). */
function persisted(actor: { getPersistedSnapshot(): unknown }): Record<string, any> {
  return JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
}

function stored(snapshot: unknown, overrides: Partial<StoredActor> = {}): StoredActor {
  const value = (snapshot as { value?: unknown } | undefined)?.value;
  return { version: 1, schema: SNAPSHOT_SCHEMA, state: String(value), updatedAt: T0, snapshot, ...overrides };
}

/** The id of the child each state invokes, read from the machine itself. */
function invokedChildren(state: string): string[] {
  return (accountMachine.root.states[state]?.invoke ?? []).map((invoke) => invoke.id);
}

const reachableStates = () => walkReachableStates(ACCOUNT, T0);

describe('persisted snapshot format', () => {
  it('is plain JSON with the deadline in context and each invoked child named by its src', async () => {
    const clock = clockAt(0);
    const listing = gate();
    const applying = gate();
    const downloading = gate();
    const finishing = gate();
    const machine = machineWith(clock, {
      listChanges: [listing, 'ok', { fail: 'auth' }],
      applyChanges: [applying, { fail: 'dropbox_unavailable' }],
      downloadQueue: [downloading],
      finishRun: [finishing],
    });
    const { actor, errors } = start(machine);
    const byState: Record<string, unknown> = { idle: persisted(actor) };
    const expectRaw = () => {
      // nothing in the snapshot changes on a JSON round trip (no functions, Dates, errors, Maps);
      // toEqual, not toStrictEqual: XState's `error: undefined` and `output: undefined` may go
      expect(JSON.parse(JSON.stringify(actor.getPersistedSnapshot()))).toEqual(actor.getPersistedSnapshot());
    };
    expectRaw();
    actor.send({ type: 'WEBHOOK' });
    await settle();
    byState.fetching = persisted(actor);
    listing.open();
    await settle();
    byState.applying = persisted(actor);
    applying.open();
    await settle();
    byState.downloading = persisted(actor);
    downloading.open();
    await settle();
    byState.finishing = persisted(actor);
    finishing.open();
    await settle();
    expect(actor.getSnapshot().value).toBe('idle');
    actor.send({ type: 'WEBHOOK' }); // second run: apply fails
    await settle();
    expect(actor.getSnapshot().value).toBe('backoff');
    expectRaw();
    byState.backoff = persisted(actor);
    const backoffRecord = byState.backoff;
    clock.set(T0 + 500);
    await settle();
    expect(actor.getSnapshot().value).toBe('idle');
    actor.send({ type: 'WEBHOOK' }); // third run: Dropbox refuses the token
    await settle();
    expect(actor.getSnapshot().value).toBe('awaitingRelink');
    expectRaw();
    byState.awaitingRelink = persisted(actor);
    byState.backoff = backoffRecord;
    expect(errors).toEqual([]);

    const backoff = byState.backoff as Record<string, any>;
    expect(backoff.context).toMatchObject({ retryAt: T0 + 500, retryState: 'applying', attempt: 1, lastError: { kind: 'dropbox_unavailable', at: T0 } });
    expect(backoff.children).toEqual({ waitUntil: { src: 'waitUntil', syncSnapshot: false, snapshot: { status: 'active', input: { until: T0 + 500, accountId: 'acc-1' } } } });
    // No deadline and no child: nothing runs until a re-link.
    const awaiting = byState.awaitingRelink as Record<string, any>;
    expect(awaiting.context).toMatchObject({ retryAt: null, retryState: 'fetching', attempt: 1, lastError: { kind: 'auth', at: T0 + 500 } });
    expect(awaiting.children).toEqual({});
    for (const [state, snapshot] of Object.entries(byState)) {
      expect(Object.keys((snapshot as Record<string, any>).children), state).toEqual(invokedChildren(state));
    }
    expect(Object.keys(byState)).toEqual(Object.keys(accountMachine.root.states));
    expect(byState).toMatchSnapshot();
  });
});

describe('the compact form of an idle actor', () => {
  it('is taken for an idle snapshot only, and expands back to exactly that snapshot', () => {
    let idles = 0;
    for (const state of reachableStates()) {
      const record = idleRecordOf(state.snapshot);
      if (state.value !== 'idle') {
        expect(record, state.name).toBeNull();
        continue;
      }
      idles++;
      expect(record, state.name).not.toBeNull();
      expect(JSON.parse(JSON.stringify(idleSnapshot(ACCOUNT, record!)))).toEqual(state.snapshot);
    }
    expect(idles).toBeGreaterThan(0);
  });

  it('is refused for an idle snapshot that says more than runs and the last sync', () => {
    const idle = idleSnapshot(ACCOUNT, { runs: 2, lastSyncedAt: T0 }) as unknown as Record<string, any>;
    expect(idleRecordOf(idle)).toEqual({ runs: 2, lastSyncedAt: T0 });
    const variants = [
      { ...idle, context: { ...idle.context, lastError: { kind: 'auth', message: 'x', at: T0 } } },
      { ...idle, context: { ...idle.context, attempt: 1 } },
      { ...idle, context: { ...idle.context, addedByANewerMachine: true } },
      { ...idle, children: { listChanges: { src: 'listChanges' } } },
      { ...idle, status: 'error' },
    ];
    for (const variant of variants) expect(idleRecordOf(variant)).toBeNull();
  });

  it('restores into a live idle actor with the same context', () => {
    const snapshot = idleSnapshot(ACCOUNT, { runs: 7, lastSyncedAt: T0 });
    const check = validateSnapshot(accountMachine, stored(snapshot), ACCOUNT);
    expect(check.ok).toBe(true);
    const { actor, errors } = start(machineWith(clockAt(0)), snapshot);
    expect(actor.getSnapshot().value).toBe('idle');
    expect(actor.getSnapshot().context).toEqual({ accountId: ACCOUNT, attempt: 0, retryAt: null, retryState: null, lastError: null, lastSyncedAt: T0, runs: 7 });
    expect(errors).toEqual([]);
  });
});

describe('restoring a snapshot', () => {
  it('a backoff restored mid-wait waits only the time left, on the new clock', async () => {
    const first = clockAt(0);
    const { actor } = start(machineWith(first, { listChanges: [{ fail: 'rate_limited', retryAfterMs: 30_000 }] }));
    actor.send({ type: 'WEBHOOK' });
    await settle();
    first.set(T0 + 10_000);
    await settle();
    expect(actor.getSnapshot().value).toBe('backoff');
    const snapshot = persisted(actor);
    actor.stop(); // the process dies
    expect(snapshot.context.retryAt).toBe(T0 + 30_000);

    const clock = clockAt(10_000);
    const calls: string[] = [];
    const restored = start(machineWith(clock, {}, calls), snapshot);
    await settle();
    expect(restored.actor.getSnapshot().value).toBe('backoff');
    clock.set(T0 + 29_999);
    await settle();
    expect(restored.actor.getSnapshot().value).toBe('backoff');
    expect(calls).toEqual([]);
    clock.set(T0 + 30_000);
    await settle();
    expect(calls[0]).toBe('t+30000 listChanges');
    expect(restored.actor.getSnapshot().value).toBe('idle');
    expect(restored.errors).toEqual([]);
  });

  it('has no delayed (`after`) transitions anywhere, whose timers a restore would lose', () => {
    const withAfter = Object.entries(accountMachine.root.states).filter(([, node]) => node.after.length > 0).map(([name]) => name);
    expect(withAfter).toEqual([]);
  });

  const reachable = reachableStates();

  it('the walk reaches every state of the machine, and every backoff flavour', () => {
    expect([...new Set(reachable.map((r) => r.value))].sort()).toEqual(Object.keys(accountMachine.root.states).sort());
    expect(reachable.map((r) => `${r.name} <- ${r.events.join(' > ')}`)).toMatchSnapshot();
  });

  it.each(reachable.map((r) => [r.name, r] as const))('from %s: restores active, with its child, and reaches idle', async (_name, r) => {
    expect(r.snapshot.status).toBe('active');
    for (const child of invokedChildren(r.value)) expect(r.snapshot.children[child]?.src).toBe(child);

    const clock = clockAt(0);
    const calls: string[] = [];
    const machine = machineWith(clock, {}, calls);
    const { actor, errors } = start(machine, r.snapshot);
    const snap = actor.getSnapshot();
    expect(snap.status).toBe('active');
    expect(snap.value).toBe(r.value);
    expect(Object.keys(snap.children)).toEqual(invokedChildren(r.value));

    if (r.value === 'idle' || r.value === 'awaitingRelink') actor.send({ type: 'WEBHOOK' });
    await settle();
    clock.set(T0 + 60_000); // past any deadline in these snapshots
    await settle();
    expect(actor.getSnapshot().value).toBe('idle');
    expect(errors).toEqual([]);
    // a restored step runs again; a restored backoff resumes the step that failed (a download by
    // listing first)
    const firstStep = { idle: 'listChanges', fetching: 'listChanges', applying: 'applyChanges', downloading: 'downloadQueue', finishing: 'finishRun' } as Record<string, string>;
    const retried = { fetching: 'listChanges', applying: 'applyChanges', downloading: 'listChanges', finishing: 'finishRun' } as Record<string, string>;
    const expected = r.value === 'backoff' || r.value === 'awaitingRelink' ? retried[r.retryState ?? 'fetching'] : firstStep[r.value];
    expect(calls[0]?.split(' ')[1]).toBe(expected);
  });

  it('an unknown state errors the actor if it is not validated first', async () => {
    const snapshot = { ...reachable.find((r) => r.value === 'fetching')!.snapshot, value: 'paused', children: {} };
    const machine = machineWith(clockAt(0));
    const { actor, errors } = start(machine, snapshot); // with an error observer: no uncaught exception
    await settle();
    expect(actor.getSnapshot().status).toBe('error');
    expect(errors).toHaveLength(1);
    expect(validateSnapshot(machine, stored(snapshot), ACCOUNT)).toEqual({ ok: false, reason: 'unknown state "paused"' });
  });
});

describe('validateSnapshot', () => {
  const reachable = reachableStates();
  const backoff = reachable.find((r) => r.value === 'backoff')!.snapshot;

  it('accepts the snapshot of every reachable state', () => {
    for (const r of reachable) expect(validateSnapshot(accountMachine, stored(r.snapshot), ACCOUNT), r.name).toMatchObject({ ok: true });
  });

  it('knows every state of the machine (ACCOUNT_STATES is kept by hand)', () => {
    expect([...ACCOUNT_STATES].sort()).toEqual(Object.keys(accountMachine.root.states).sort());
  });

  it.each([
    ['an unknown state', stored({ ...backoff, value: 'paused' }), /unknown state "paused"/],
    ['a nested state value', stored({ ...backoff, value: { backoff: 'x' } }), /unknown state/],
    ['a schema from the future', stored(backoff, { schema: SNAPSHOT_SCHEMA + 1 }), /schema/],
    ['an errored snapshot', stored({ ...backoff, status: 'error', error: {} }), /status is error/],
    ['a finished snapshot', stored({ ...backoff, status: 'done' }), /status is done/],
    ['a snapshot whose child is missing', stored({ ...backoff, children: {} }), /backoff lost its waitUntil child/],
    ['a snapshot whose child was renamed', stored({ ...backoff, children: { sleep: { ...backoff.children.waitUntil, src: 'sleep' } } }), /lost its waitUntil child/],
    ['a snapshot of another account', stored({ ...backoff, context: { ...backoff.context, accountId: 'acc-2' } }), /another account/],
    ['something that is not JSON', stored(undefined), /not JSON/],
  ])('rejects %s', (_name, candidate, reason) => {
    const check = validateSnapshot(accountMachine, candidate, ACCOUNT);
    expect(check.ok).toBe(false);
    expect(check.ok ? '' : check.reason).toMatch(reason);
  });

  it('rejects, in every state that invokes something, a snapshot that lost that child', () => {
    for (const r of reachable) {
      for (const child of invokedChildren(r.value)) {
        const { [child]: _lost, ...children } = r.snapshot.children as Record<string, unknown>;
        expect(validateSnapshot(accountMachine, stored({ ...r.snapshot, children }), ACCOUNT), `${r.name} without ${child}`).toMatchObject({ ok: false });
      }
    }
  });
});

function gate(): { gate: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { gate: promise, open };
}
