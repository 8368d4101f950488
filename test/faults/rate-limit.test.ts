import { SimulatedClock } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedMirror, readMirror, startHarness, waitUntil, type Harness, expectConverged as expectAccountConverged } from '../support/sync-harness.js';

/**
 * 429 with Retry-After, in fake time. Every wait of the engine (the in-call Retry-After sleep and
 * the actor's persisted backoff deadline) goes through `EngineOptions.clock`; here that is an
 * XState SimulatedClock that only moves when the test says so, so "it waited at least 30 s" is
 * checked exactly (29 999 ms: still waiting; 1 ms more: it proceeds) and the test takes no 30 s.
 *
 * The one race with fake time: advancing the clock before the engine has *registered* its sleep
 * would make the sleep start at the advanced time. So the clock is wrapped to expose its pending
 * timers, and the test first waits (in real time) until the engine's Retry-After sleep is armed.
 */
class ObservedClock extends SimulatedClock {
  /** Timers not yet fired or cleared: id -> requested delay. */
  readonly pending = new Map<number, number>();
  override setTimeout(fn: (...args: unknown[]) => void, timeout: number): number {
    const id: number = super.setTimeout(() => {
      this.pending.delete(id);
      fn();
    }, timeout);
    this.pending.set(id, timeout);
    return id;
  }
  override clearTimeout(id: number): void {
    this.pending.delete(id);
    super.clearTimeout(id);
  }
  /** Whether a timer of exactly `ms` is armed. */
  waiting(ms: number): boolean {
    return [...this.pending.values()].includes(ms);
  }
}

/** Lets every callback already queued run (fetches, Redis replies still need real I/O, so a few rounds). */
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

let h: Harness;
const clock = new ObservedClock();
beforeAll(async () => {
  // Not left at 0: lastSyncedAt and `at` come from it.
  clock.set(Date.now());
  // A fixed jitter makes the backoff deadline exact: retryDelayMs(1, jitter 0.5) = 750 ms < Retry-After.
  h = await startHarness({ engine: { clock, random: () => 0.5, maxAttemptsPerCall: 2 } });
});
afterAll(async () => { await h.close(); });

// A fixed client_modified: the mtimes the tests expect do not depend on the fake clock.
const at = new Date('2024-02-02T02:02:02Z');
const RETRY_AFTER_MS = 30_000;

/**
 * The engine asleep for RETRY_AFTER_MS inside its call to `route`, after one call: 1 ms short of
 * the wait it has not called again and is still in `state`; at the full wait it calls once more
 * and the account converges.
 */
async function expectInCallRetryAfterTheFullWait(account: string, route: string, state: string): Promise<void> {
  const calls = () => h.emulator.stats.calls(account, route);
  await waitUntil(() => clock.waiting(RETRY_AFTER_MS), 10_000, 'the engine to sleep for Retry-After');
  expect(calls()).toBe(1);

  clock.increment(RETRY_AFTER_MS - 1);
  await settle();
  expect(clock.waiting(RETRY_AFTER_MS)).toBe(true); // still asleep: the timer has 1 ms left
  expect(calls()).toBe(1);
  expect(h.engine.host.actor(account)?.getSnapshot().value).toBe(state);

  clock.increment(1);
  await h.waitForIdle(account);
  expect(calls()).toBe(2);
  await expectAccountConverged(h, account);
}


describe('429 Too Many Requests with Retry-After (fake time)', () => {
  it('on list_folder during a first sync: the in-call retry waits the full Retry-After', async () => {
    const account = 'dbid:faults-429-first';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-429-first' });
    model.writeFile(account, '/posts/a.md', '# A', { clientModified: at });
    model.writeFile(account, '/posts/b.md', '# B', { clientModified: at });
    h.emulator.faults.inject({ route: 'files/list_folder', accountId: account, status: 429, retryAfterSeconds: 30 });
    const served = h.emulator.faults.rateLimitsServed.length;

    expect((await h.linkAccount(account, { accessToken: 'tok-429-first' })).status).toBe(200);
    await waitUntil(() => h.emulator.faults.rateLimitsServed.length > served, 10_000, 'the 429 to be served');
    await expectInCallRetryAfterTheFullWait(account, 'files/list_folder', 'fetching');
  });

  it('on list_folder/continue beyond the in-call attempts: the persisted backoff also waits the full Retry-After', async () => {
    const account = 'dbid:faults-429-continue';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-429-continue' });
    model.writeFile(account, '/posts/one.md', '# One', { clientModified: at });
    expect((await h.linkAccount(account, { accessToken: 'tok-429-continue' })).status).toBe(200);
    await h.waitForIdle(account);

    model.writeFile(account, '/posts/two.md', '# Two', { clientModified: at });
    model.remove(account, '/posts/one.md');
    // Two 429s: the first is retried inside the call (after Retry-After), the second exhausts
    // maxAttemptsPerCall (2) and the actor goes to `backoff`, whose deadline must honour Retry-After too.
    h.emulator.faults.inject({ route: 'files/list_folder/continue', accountId: account, status: 429, retryAfterSeconds: 30, times: 2 });
    const served = h.emulator.faults.rateLimitsServed.length;
    const continues = () => h.emulator.stats.calls(account, 'files/list_folder/continue');
    const before = continues();
    await h.engine.notify([account]);

    // 1) The in-call wait.
    await waitUntil(() => h.emulator.faults.rateLimitsServed.length === served + 1, 10_000, 'the first 429');
    await waitUntil(() => clock.waiting(RETRY_AFTER_MS), 10_000, 'the in-call Retry-After sleep');
    expect(continues()).toBe(before + 1);
    clock.increment(RETRY_AFTER_MS - 1);
    await settle();
    expect(clock.waiting(RETRY_AFTER_MS)).toBe(true);
    expect(continues()).toBe(before + 1);
    clock.increment(1);

    // 2) The second 429 fails the step: backoff with kind rate_limited, deadline = Retry-After.
    await waitUntil(() => h.emulator.faults.rateLimitsServed.length === served + 2, 10_000, 'the second 429');
    await waitUntil(() => h.engine.host.actor(account)?.getSnapshot().value === 'backoff' && clock.waiting(RETRY_AFTER_MS), 10_000, 'the backoff sleep');
    const status = (await (await h.api(`/accounts/${account}`)).json()) as { state: string; lastError: { kind: string; message: string } | null };
    expect(status.state).toBe('backoff');
    expect(status.lastError?.kind).toBe('rate_limited');
    expect(continues()).toBe(before + 2);

    clock.increment(RETRY_AFTER_MS - 1);
    await settle();
    expect(clock.waiting(RETRY_AFTER_MS)).toBe(true);
    expect(h.engine.host.actor(account)?.getSnapshot().value).toBe('backoff');
    expect(continues()).toBe(before + 2);

    clock.increment(1);
    await waitUntil(() => continues() > before + 2, 10_000, 'the listing to resume');
    await h.waitForIdle(account);
    await expectAccountConverged(h, account);
    expect((await readMirror(h.dataDir, account)).has('/posts/one.md')).toBe(false);
    // Every 429 served was for this route and asked for 30 s.
    expect(h.emulator.faults.rateLimitsServed.slice(served).map((r) => [r.route, r.retryAfterSeconds])).toEqual([
      ['files/list_folder/continue', 30],
      ['files/list_folder/continue', 30],
    ]);
  });
});

describe('a Retry-After longer than the engine waits inside a call (fake time)', () => {
  it('ends the call at once and backs off durably, the wait capped at 5 minutes, then resumes', async () => {
    // An hour, as a struggling server may ask: waited inside the call, it held the account's run
    // slot for the hour (three times over with the retries, past fetching's deadline); and a value
    // past 2^31 ms made Node's timer fire after 1 ms, retrying in a loop.
    const account = 'dbid:faults-429-long';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-429-long' });
    model.writeFile(account, '/posts/one.md', '# One', { clientModified: at });
    expect((await h.linkAccount(account, { accessToken: 'tok-429-long' })).status).toBe(200);
    await h.waitForIdle(account);
    model.writeFile(account, '/posts/two.md', '# Two', { clientModified: at });
    h.emulator.faults.inject({ route: 'files/list_folder/continue', accountId: account, status: 429, retryAfterSeconds: 3_600, times: 1 });
    const continues = () => h.emulator.stats.calls(account, 'files/list_folder/continue');
    const before = continues();
    await h.engine.notify([account]);

    const CAPPED_MS = 5 * 60_000;
    await waitUntil(() => h.engine.host.actor(account)?.getSnapshot().value === 'backoff' && clock.waiting(CAPPED_MS), 10_000, 'a backoff of 5 minutes');
    expect(continues()).toBe(before + 1);
    const status = (await (await h.api(`/accounts/${account}`)).json()) as { lastError: { kind: string } | null };
    expect(status.lastError?.kind).toBe('rate_limited');

    clock.increment(CAPPED_MS);
    await h.waitForIdle(account);
    expect(continues()).toBe(before + 2);
    await expectAccountConverged(h, account);
  });
});

describe('429 with a plain-text body (fake time)', () => {
  it('on files/download: the in-call retry still waits the full Retry-After (dropbox-api.md 5.2)', async () => {
    const account = 'dbid:faults-429-text';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-429-text' });
    model.writeFile(account, '/posts/a.md', '# A', { clientModified: at });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, status: 429, retryAfterSeconds: 30, body: 'Too Many Requests' });
    const served = h.emulator.faults.rateLimitsServed.length;

    expect((await h.linkAccount(account, { accessToken: 'tok-429-text' })).status).toBe(200);
    await waitUntil(() => h.emulator.faults.rateLimitsServed.length > served, 10_000, 'the 429 to be served');
    await expectInCallRetryAfterTheFullWait(account, 'files/download', 'downloading');
  });
});

describe('503 Service Unavailable with Retry-After (fake time)', () => {
  it('the in-call retry waits the full Retry-After, not the short exponential delay', async () => {
    const account = 'dbid:faults-503-retry-after';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-503' });
    model.writeFile(account, '/posts/a.md', '# A', { clientModified: at });
    h.emulator.faults.inject({ route: 'files/list_folder', accountId: account, status: 503, retryAfterSeconds: 30 });

    expect((await h.linkAccount(account, { accessToken: 'tok-503' })).status).toBe(200);
    await expectInCallRetryAfterTheFullWait(account, 'files/list_folder', 'fetching');
  });
});
