import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { accountMachine, type FinishOutput, type StepInput } from '../../machines/account.machine.js';
import { sleep } from '../../src/engine/clock.js';
import { type FailureKind, SyncError } from '../../src/sync/sync-failure.js';

/**
 * The account machine driven through whole runs with fake step actors and fake time. The fakes
 * behave like the engine's (src/engine/step-actors.ts): steps throw SyncError stamped with the
 * clock, `waitUntil` is `sleep(clock, until - clock.now())`.
 */

const T0 = 1_700_000_000_000;
type Step = 'listChanges' | 'applyChanges' | 'downloadQueue' | 'finishRun';
interface Fail {
  fail: FailureKind;
  retryAfterMs?: number;
  jitter?: number;
}
/** What one call of a step does: succeed, (finishRun only) report a dirty mailbox, fail, or wait for a gate. */
type Outcome = 'ok' | 'again' | Fail | { gate: Promise<void> };

function account(script: Partial<Record<Step, Outcome[]>> = {}) {
  const clock = new SimulatedClock();
  clock.set(T0);
  const rel = (t: number | null) => (t === null ? 'null' : `t+${t - T0}`);
  const calls: string[] = [];
  const trace: string[] = [];
  const errors: unknown[] = [];

  async function perform(name: Step): Promise<'ok' | 'again'> {
    calls.push(`${rel(clock.now())} ${name}`);
    const outcome = script[name]?.shift() ?? 'ok';
    if (typeof outcome === 'object' && 'gate' in outcome) {
      await outcome.gate;
      return 'ok';
    }
    if (typeof outcome === 'object') {
      throw new SyncError({ kind: outcome.fail, message: `${name} failed`, at: clock.now(), jitter: outcome.jitter ?? 0, ...(outcome.retryAfterMs ? { retryAfterMs: outcome.retryAfterMs } : {}) });
    }
    return outcome;
  }
  const step = (name: Exclude<Step, 'finishRun'>) => fromPromise<unknown, StepInput>(async () => perform(name));
  const machine = accountMachine.provide({
    actors: {
      listChanges: step('listChanges'),
      applyChanges: step('applyChanges'),
      downloadQueue: step('downloadQueue'),
      finishRun: fromPromise<FinishOutput, StepInput>(async () => {
        const next = await perform('finishRun');
        return { next: next === 'again' ? 'again' : 'idle', at: clock.now() };
      }),
      waitUntil: fromPromise<void, { until: number }>(({ input, signal }) => {
        signal.addEventListener('abort', () => calls.push(`${rel(clock.now())} waitUntil aborted`));
        return sleep(clock, input.until - clock.now(), signal);
      }),
    },
  });
  const actor = createActor(machine, { input: { accountId: 'acc-1' }, clock });
  actor.subscribe({
    next: (snap) => {
      const { attempt, retryAt, retryState, runs } = snap.context;
      const line = `${rel(clock.now())} ${String(snap.value)}${snap.value === 'backoff' ? ` attempt=${attempt} retry=${retryState} at ${rel(retryAt)}` : ''} runs=${runs}`;
      if (trace.at(-1) !== line) trace.push(line);
    },
    error: (error) => errors.push(error),
  });
  actor.start();

  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  return {
    actor,
    clock,
    calls,
    trace,
    errors,
    settle,
    state: () => String(actor.getSnapshot().value),
    send: async (type: 'WEBHOOK' | 'RESYNC') => {
      actor.send({ type });
      await settle();
    },
    /** Moves fake time to T0 + ms and lets the machine react. */
    at: async (ms: number) => {
      clock.set(T0 + ms);
      await settle();
    },
  };
}

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { gate: promise, open };
}

describe('account machine: runs', () => {
  it('a webhook runs list, apply, download, finish once and returns to idle', async () => {
    const a = account();
    expect(a.state()).toBe('idle');
    await a.send('WEBHOOK');
    expect(a.state()).toBe('idle');
    expect(a.trace).toMatchSnapshot();
    expect(a.calls).toEqual(['t+0 listChanges', 't+0 applyChanges', 't+0 downloadQueue', 't+0 finishRun']);
    expect(a.actor.getSnapshot().context).toMatchObject({ runs: 1, lastSyncedAt: T0, attempt: 0, retryAt: null, retryState: null, lastError: null });
    expect(a.errors).toEqual([]);
  });

  it('a mailbox dirtied during the run loops back to fetching exactly once', async () => {
    const a = account({ finishRun: ['again', 'ok'] });
    await a.send('WEBHOOK');
    expect(a.state()).toBe('idle');
    expect(a.trace).toMatchSnapshot();
    expect(a.calls.filter((c) => c.endsWith('listChanges'))).toHaveLength(2);
    expect(a.calls.filter((c) => c.endsWith('finishRun'))).toHaveLength(2);
    expect(a.actor.getSnapshot().context.runs).toBe(2);
  });
});

describe('account machine: failures and backoff', () => {
  it('a failed download waits out its deadline, lists again, then retries; its attempts keep adding up until it succeeds', async () => {
    const a = account({ downloadQueue: [{ fail: 'dropbox_unavailable', jitter: 0 }, { fail: 'dropbox_unavailable', jitter: 0 }] });
    await a.send('WEBHOOK');
    // attempt 1, jitter 0: half of the 1 s base delay
    expect(a.state()).toBe('backoff');
    expect(a.actor.getSnapshot().context).toMatchObject({ attempt: 1, retryAt: T0 + 500, retryState: 'downloading', lastError: { kind: 'dropbox_unavailable', at: T0 } });
    await a.at(499);
    expect(a.state()).toBe('backoff');
    await a.at(500);
    // the listing and the apply before it succeed, but attempt 2 of the download fails again at
    // t+500: the delay doubles (1 s with jitter 0)
    expect(a.actor.getSnapshot().context).toMatchObject({ attempt: 2, retryAt: T0 + 1500, retryState: 'downloading' });
    await a.at(1499);
    expect(a.state()).toBe('backoff');
    await a.at(1500);
    expect(a.state()).toBe('idle');
    expect(a.trace).toMatchSnapshot();
    // Each retry lists first: changes that arrived during the backoff are applied and queued, so a
    // download that keeps failing does not hold them back.
    expect(a.calls).toEqual([
      't+0 listChanges',
      't+0 applyChanges',
      't+0 downloadQueue',
      't+500 listChanges',
      't+500 applyChanges',
      't+500 downloadQueue',
      't+1500 listChanges',
      't+1500 applyChanges',
      't+1500 downloadQueue',
      't+1500 finishRun',
    ]);
    // success resets the failure count; a completed run clears the last error
    expect(a.actor.getSnapshot().context).toMatchObject({ attempt: 0, retryAt: null, retryState: null, lastError: null, runs: 1, lastSyncedAt: T0 + 1500 });
  });

  it('a 429 waits for Retry-After when it is longer than the exponential delay', async () => {
    const a = account({ listChanges: [{ fail: 'rate_limited', retryAfterMs: 30_000, jitter: 0.999 }] });
    await a.send('WEBHOOK');
    // exponential delay of attempt 1 is at most 1 s; the server asked for 30 s
    expect(a.actor.getSnapshot().context).toMatchObject({ retryAt: T0 + 30_000, retryState: 'fetching', lastError: { kind: 'rate_limited', retryAfterMs: 30_000 } });
    await a.at(1_000);
    expect(a.state()).toBe('backoff');
    await a.at(29_999);
    expect(a.state()).toBe('backoff');
    expect(a.calls).toEqual(['t+0 listChanges']);
    await a.at(30_000);
    expect(a.state()).toBe('idle');
    expect(a.trace).toMatchSnapshot();
    expect(a.calls[1]).toBe('t+30000 listChanges');
  });

  it('RESYNC cuts a backoff short, and the abandoned deadline does not fire later', async () => {
    const a = account({ applyChanges: [{ fail: 'rate_limited', retryAfterMs: 300_000 }] });
    await a.send('WEBHOOK');
    expect(a.actor.getSnapshot().context).toMatchObject({ retryAt: T0 + 300_000, retryState: 'applying' });
    await a.at(1_000);
    await a.send('RESYNC');
    expect(a.state()).toBe('idle');
    // the resync starts over from the listing, at once
    expect(a.calls).toEqual([
      't+0 listChanges',
      't+0 applyChanges',
      't+1000 waitUntil aborted',
      't+1000 listChanges',
      't+1000 applyChanges',
      't+1000 downloadQueue',
      't+1000 finishRun',
    ]);
    const trace = [...a.trace];
    await a.at(300_000);
    expect(a.trace).toEqual(trace);
    expect(a.calls).toHaveLength(7);
    expect(a.trace).toMatchSnapshot();
  });
});

describe('account machine: credentials Dropbox refused', () => {
  it('wait for a re-link with no deadline; the wake of the re-link retries the failed step, listing first', async () => {
    const a = account({ downloadQueue: [{ fail: 'dropbox_unavailable', jitter: 0 }, { fail: 'auth' }] });
    await a.send('WEBHOOK');
    await a.at(500); // the backoff's retry lists, applies, and the download is refused
    expect(a.state()).toBe('awaitingRelink');
    expect(a.actor.getSnapshot().context).toMatchObject({ attempt: 2, retryAt: null, retryState: 'downloading', lastError: { kind: 'auth', at: T0 + 500 } });
    expect(a.actor.getSnapshot().children).toEqual({}); // nothing running, nothing to wait for
    await a.at(30 * 24 * 3_600_000); // a month later: no step was tried again on its own
    expect(a.state()).toBe('awaitingRelink');
    expect(a.calls).toHaveLength(6);
    await a.send('WEBHOOK'); // the re-link's wake
    expect(a.state()).toBe('idle');
    expect(a.calls.slice(6)).toEqual(['t+2592000000 listChanges', 't+2592000000 applyChanges', 't+2592000000 downloadQueue', 't+2592000000 finishRun']);
    expect(a.actor.getSnapshot().context).toMatchObject({ attempt: 0, retryState: null, lastError: null, runs: 1 });
    expect(a.trace).toMatchSnapshot();
  });

  it('refused again after the re-link: back to waiting, its count started afresh', async () => {
    const a = account({ listChanges: [{ fail: 'auth' }, { fail: 'auth' }] });
    await a.send('WEBHOOK');
    expect(a.state()).toBe('awaitingRelink');
    expect(a.actor.getSnapshot().context).toMatchObject({ attempt: 1, retryState: 'fetching' });
    await a.send('RESYNC'); // an operator's resync, or a re-link with a token that is no better
    expect(a.state()).toBe('awaitingRelink');
    expect(a.actor.getSnapshot().context).toMatchObject({ attempt: 1, retryState: 'fetching', lastError: { kind: 'auth' } });
    expect(a.calls).toEqual(['t+0 listChanges', 't+0 listChanges']);
  });
});

describe('account machine: events while busy', () => {
  it('WEBHOOKs during a run or a backoff change nothing: the Redis mailbox records them', async () => {
    const listing = gate();
    const a = account({ listChanges: [listing], downloadQueue: [{ fail: 'filesystem' }] });
    await a.send('WEBHOOK');
    expect(a.state()).toBe('fetching');
    await a.send('WEBHOOK');
    await a.send('WEBHOOK');
    await a.send('RESYNC'); // also the mailbox's business while a run is going
    expect(a.state()).toBe('fetching');
    listing.open();
    await a.settle();
    expect(a.state()).toBe('backoff');
    const deadline = a.actor.getSnapshot().context.retryAt;
    await a.send('WEBHOOK');
    expect(a.state()).toBe('backoff');
    expect(a.actor.getSnapshot().context.retryAt).toBe(deadline);
    await a.at(500);
    expect(a.state()).toBe('idle');
    // One listing for the run, one before the download's retry: none for the WEBHOOKs themselves.
    expect(a.calls.filter((c) => c.endsWith('listChanges'))).toEqual(['t+0 listChanges', 't+500 listChanges']);
    expect(a.actor.getSnapshot().context.runs).toBe(1);
    expect(a.trace).toMatchSnapshot();
  });

  it('a wake that lands while finishing asks the mailbox again instead of being lost', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    // The first finish step answers "idle" only after the gate opens; the wake arrives before that.
    const a = account({ finishRun: [{ gate }, 'again'] });
    a.actor.send({ type: 'WEBHOOK' });
    await a.settle();
    expect(a.state()).toBe('finishing');
    a.actor.send({ type: 'WEBHOOK' }); // the mailbox was already idle, so the webhook woke us
    release();
    await a.settle();
    expect(a.state()).toBe('idle');
    expect(a.calls.filter((c) => c.endsWith('finishRun'))).toHaveLength(3); // asked again: "again", then a new run's finish
    expect(a.calls.filter((c) => c.endsWith('listChanges'))).toHaveLength(2);
  });

  it('accepts WEBHOOK only in idle, finishing and awaitingRelink, and RESYNC there and in backoff', () => {
    const { context } = createActor(accountMachine, { input: { accountId: 'acc-1' } }).getSnapshot();
    const accepted = Object.keys(accountMachine.root.states).map((state) => {
      const snap = accountMachine.resolveState({ value: state, context });
      return `${state}: ${(['WEBHOOK', 'RESYNC'] as const).filter((type) => snap.can({ type })).join(', ') || '-'}`;
    });
    expect(accepted).toEqual(['idle: WEBHOOK, RESYNC', 'fetching: -', 'applying: -', 'downloading: -', 'finishing: WEBHOOK, RESYNC', 'backoff: RESYNC', 'awaitingRelink: WEBHOOK, RESYNC']);
  });
});
