import { afterEach, describe, expect, it } from 'vitest';
import { LINKED_ACCOUNTS_KEY, SWEEP_TURN_KEY } from '../../src/redis/keys.js';
import { expectedMirror, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/** What keeps an account from being stuck or stale when everything else went wrong. */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('the watchdog', () => {
  it('restarts an actor whose state overstays its deadline, and the sync completes', async () => {
    const logLines: string[] = [];
    // A call deadline far beyond the state deadline: only the watchdog can end the hang.
    h = await startHarness({
      logLines,
      dropboxCallTimeoutMs: 60_000,
      engine: { stateDeadlinesMs: { fetching: 400 }, watchdogIntervalMs: 50 },
    });
    const account = 'dbid:watchdog';
    h.emulator.model.addAccount(account, { accessToken: 'tok-wd' });
    h.emulator.model.writeFile(account, '/post.md', '# Watched');
    h.emulator.faults.inject({ route: 'files/list_folder', hang: true, times: 1 });
    await h.linkAccount(account, { accessToken: 'tok-wd' });
    await h.waitForIdle(account, 10_000);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));
    const overstayed = logLines.map((l) => JSON.parse(l) as { msg: string; state?: string }).filter((l) => l.msg.startsWith('state overstayed'));
    expect(overstayed).toHaveLength(1);
    expect(overstayed[0]?.state).toBe('fetching');
  });
});

/** Links the account, waits for its first sync, then for its idle actor to leave memory. */
async function linkAndPassivate(account: string): Promise<void> {
  await h!.linkAccount(account);
  await h!.waitForIdle(account);
  await waitUntil(() => h!.engine.host.actor(account) === undefined, 5_000, 'the idle actor to be passivated');
}

describe('the lost-webhook safety net', () => {
  it('lists an idle account again when no webhook came for the poll interval', async () => {
    h = await startHarness({ engine: { idleTimeoutMs: 20, pollIntervalMs: 1, maxPollsPerSweep: 10 } });
    const account = 'dbid:poll';
    await linkAndPassivate(account);

    h.emulator.model.writeFile(account, '/missed.md', '# The webhook for this was lost');
    expect(await h.engine.sweep()).toEqual({ reaped: 0, polled: 1, rechecked: 0 });
    await waitUntil(async () => (await readMirror(h!.dataDir, account)).has('/missed.md'), 10_000, 'the missed file');
    await h.waitForIdle(account);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));
  });

  it('still polls every account when the set of linked accounts holds something that is no account id', async () => {
    h = await startHarness({ engine: { idleTimeoutMs: 20, pollIntervalMs: 1, maxPollsPerSweep: 10 } });
    const account = 'dbid:poll-beside-a-bad-id';
    await linkAndPassivate(account);
    await h.redis.sadd(LINKED_ACCOUNTS_KEY, 'not an id {}'); // by hand, or by a tool gone wrong

    h.emulator.model.writeFile(account, '/missed.md', '# The webhook for this was lost');
    expect(await h.engine.sweep()).toEqual({ reaped: 0, polled: 1, rechecked: 0 });
    await waitUntil(async () => (await readMirror(h!.dataDir, account)).has('/missed.md'), 10_000, 'the missed file');
  });

  it('never runs two sweeps at once: a call during a sweep gets that sweep', async () => {
    h = await startHarness({ engine: { idleTimeoutMs: 20, pollIntervalMs: 60 * 60_000 } });
    for (let i = 0; i < 3; i++) await h.linkAccount(`dbid:sweep-${i}`);
    for (let i = 0; i < 3; i++) await h.waitForIdle(`dbid:sweep-${i}`);
    const first = h.engine.sweep();
    expect(h.engine.sweep()).toBe(first);
    await first;
    const next = h.engine.sweep();
    expect(next).not.toBe(first); // and a new one starts once it ended
    await next;
  });

  it('leaves recently listed accounts alone', async () => {
    h = await startHarness({ engine: { idleTimeoutMs: 20, pollIntervalMs: 60 * 60_000 } });
    const account = 'dbid:fresh';
    await linkAndPassivate(account);
    const calls = h.emulator.stats.calls(account);
    expect(await h.engine.sweep()).toEqual({ reaped: 0, polled: 0, rechecked: 0 });
    expect(h.emulator.stats.calls(account)).toBe(calls);
    expect((await h.engine.mailbox.read(account)).dirty).toBe(false);
  });
});

describe('the scheduled sweep', () => {
  it('runs in one process per interval, whichever takes the turn; another takes it once the turn runs out', async () => {
    // Every process sweeping read every mailbox every interval: at 100,000 accounts about 3.4 s of
    // each process's event loop per 10 s. One sweep per interval reaps and polls for all of them.
    const harness = await startHarness();
    h = harness;
    const peer = await harness.startPeer({ ownerId: 'sweep-turn-peer' });
    try {
      const INTERVAL_MS = 400;
      const first = await harness.engine.scheduledSweep(INTERVAL_MS);
      expect(first).toEqual({ reaped: 0, polled: 0, rechecked: 0 });
      expect(await peer.engine.scheduledSweep(INTERVAL_MS)).toBe('not my turn');
      expect(await harness.engine.scheduledSweep(INTERVAL_MS)).toBe('not my turn'); // once per interval, the taker too
      // The turn lasts most of an interval: a sweeper that died loses it before the next one.
      await waitUntil(async () => (await harness.redis.exists(SWEEP_TURN_KEY)) === 0, 5_000, 'the turn to run out');
      expect(await peer.engine.scheduledSweep(INTERVAL_MS)).toEqual({ reaped: 0, polled: 0, rechecked: 0 });
    } finally {
      await peer.close();
    }
  });
});

