import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { ActorPersistence } from '../../src/engine/actor-persistence.js';
import { accountKeys } from '../../src/redis/keys.js';
import { walkReachableStates } from '../support/machine-walk.js';
import { APP_KEY, APP_SECRET, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * `maxActiveRuns` run slots per process, here one: whatever happens to an account, its slot comes
 * back, so the other accounts of the process keep syncing.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness({ engine: { maxActiveRuns: 1 } }); });
afterAll(async () => { await h.close(); });

const state = (accountId: string) => String(h.engine.host.actor(accountId)?.getSnapshot().value);

function addAccount(accountId: string, files: Record<string, string> = { '/p/a.md': '# a' }): void {
  h.emulator.model.addAccount(accountId, { accessToken: `token-${accountId}` });
  for (const [path, content] of Object.entries(files)) h.emulator.model.writeFile(accountId, path, content);
}

describe('run slots', () => {
  it('an account that keeps failing gives its slot back while it backs off', async () => {
    const failing = 'dbid:slots-failing';
    const healthy = 'dbid:slots-healthy';
    addAccount(failing);
    h.emulator.faults.inject({ route: 'files/list_folder', accountId: failing, status: 503, times: Infinity });
    try {
      expect((await h.linkAccount(failing)).status).toBe(200);
      await waitUntil(async () => (await h.status(failing)).lastError?.kind === 'dropbox_unavailable', 10_000, 'the failure');

      addAccount(healthy);
      expect((await h.linkAccount(healthy)).status).toBe(200);
      await h.waitForIdle(healthy, 10_000);
      // Still failing, still in memory, retrying on its own deadline.
      expect(h.engine.host.actor(failing)).toBeDefined();
    } finally {
      h.emulator.faults.clear();
    }
    await h.waitForIdle(failing, 15_000);
  });

  it('an account whose credentials Dropbox refuses gives its slot back while it waits for a re-link', async () => {
    const revoked = 'dbid:slots-revoked';
    const healthy = 'dbid:slots-healthy-2';
    addAccount(revoked);
    expect((await h.linkAccount(revoked, { accessToken: 'a-token-dropbox-refuses' })).status).toBe(200);
    await waitUntil(async () => (await h.status(revoked)).state === 'awaitingRelink', 10_000, 'the wait for a re-link');

    addAccount(healthy);
    expect((await h.linkAccount(healthy)).status).toBe(200);
    await h.waitForIdle(healthy, 10_000);
    expect(state(revoked)).toBe('awaitingRelink'); // (passivated after the idle timeout: awaiting-relink.test.ts)
  });

  it('a lease grant that fails (Redis timed out) gives the slot back', async () => {
    const unlucky = 'dbid:slots-unlucky';
    const next = 'dbid:slots-next';
    addAccount(unlucky);
    await h.engine.accounts.link(unlucky, { accessToken: `token-${unlucky}` }, [], Date.now());
    const acquire = h.engine.leases.acquire.bind(h.engine.leases);
    h.engine.leases.acquire = async () => {
      h.engine.leases.acquire = acquire;
      throw new Error('Command timed out');
    };
    await expect(h.engine.host.send(unlucky, { type: 'WEBHOOK' })).rejects.toThrow('Command timed out');
    // Unlinked before anything wakes it again (by another process: nothing here hears of it).
    await h.engine.accounts.unlink(unlucky);

    addAccount(next);
    expect((await h.linkAccount(next)).status).toBe(200);
    await h.waitForIdle(next, 10_000);
  });

  it('retries leaving backoff wait for the slot too: an outage never runs more than maxActiveRuns at once', async () => {
    const ids = ['dbid:slots-outage-0', 'dbid:slots-outage-1', 'dbid:slots-outage-2'];
    for (const id of ids) addAccount(id);
    // Dropbox fails every listing, slowly (200 ms, then 503): runs fail and back off, again and again.
    h.emulator.faults.setLatency(200, 'files/list_folder');
    h.emulator.faults.inject({ route: 'files/list_folder', status: 503, times: Infinity });
    const running = new Set<string>();
    let most = 0;
    let failures = 0;
    const onState = ({ accountId, to }: { accountId: string; to: string }) => {
      if (!ids.includes(accountId)) return;
      if (['fetching', 'applying', 'downloading', 'finishing'].includes(to)) running.add(accountId);
      else running.delete(accountId);
      most = Math.max(most, running.size);
    };
    const onFailed = ({ accountId }: { accountId: string }) => { if (ids.includes(accountId)) failures++; };
    h.engine.events.on('state', onState);
    h.engine.events.on('stepFailed', onFailed);
    try {
      for (const id of ids) expect((await h.linkAccount(id)).status).toBe(200);
      // Each account failed twice: its retry came out of backoff at least once.
      await waitUntil(() => failures >= 2 * ids.length, 30_000, 'two failures per account');
      h.emulator.faults.clear();
      h.emulator.faults.setLatency(0, 'files/list_folder');
      for (const id of ids) await h.waitForIdle(id, 30_000);
    } finally {
      h.emulator.faults.clear();
      h.emulator.faults.setLatency(0, 'files/list_folder');
      h.engine.events.off('state', onState);
      h.engine.events.off('stepFailed', onFailed);
    }
    expect(most).toBe(1);
  }, 60_000);

  it('an account unlinked while it waits for a slot is not started when the slot frees', async () => {
    const busy = 'dbid:slots-busy';
    const gone = 'dbid:slots-gone';
    addAccount(busy, Object.fromEntries(Array.from({ length: 5 }, (_, n) => [`/p/${n}.md`, `# ${n}`])));
    h.emulator.faults.setLatency(300, 'files/download');
    try {
      expect((await h.linkAccount(busy)).status).toBe(200);
      await waitUntil(() => state(busy) === 'downloading', 10_000, 'the busy account downloading');

      addAccount(gone);
      expect((await h.linkAccount(gone)).status).toBe(200);
      expect(h.engine.host.handles(gone) && !h.engine.host.actor(gone)).toBe(true); // waiting for the slot
      expect((await h.api(`/accounts/${gone}`, { method: 'DELETE' })).status).toBe(204);
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    await h.waitForIdle(busy, 15_000);
    expect(h.engine.host.handles(gone)).toBe(false);
    expect(h.engine.host.actor(gone)).toBeUndefined();
    // No lease taken for it, no actor state written: nothing of it runs anywhere.
    expect(await h.redis.get(accountKeys(gone).lease)).toBeNull();
    expect(await h.redis.exists(accountKeys(gone).actor)).toBe(0);
    expect(h.emulator.stats.calls(gone, 'files/list_folder')).toBe(0);
  });
});

describe('run slots across processes', () => {
  /** The most accounts of `ids` in a run state at once in this process, from its state events. */
  function countRuns(ids: string[]) {
    const running = new Set<string>();
    const counted = { most: 0, stop: () => h.engine.events.off('state', onState) };
    const onState = ({ accountId, to }: { accountId: string; to: string }) => {
      if (!ids.includes(accountId)) return;
      if (['fetching', 'applying', 'downloading', 'finishing'].includes(to)) running.add(accountId);
      else running.delete(accountId);
      counted.most = Math.max(counted.most, running.size);
    };
    h.engine.events.on('state', onState);
    return counted;
  }
  const listings = (id: string) => h.emulator.stats.calls(id, 'files/list_folder') + h.emulator.stats.calls(id, 'files/list_folder/continue');

  it('wakes published by another process take a slot here too', async () => {
    const ids = ['dbid:slots-wake-0', 'dbid:slots-wake-1', 'dbid:slots-wake-2'];
    for (const id of ids) {
      addAccount(id);
      expect((await h.linkAccount(id)).status).toBe(200);
      await h.waitForIdle(id);
    }
    const other = await h.startPeer({ ownerId: 'slots-other', maxActiveRuns: 1 });
    const counted = countRuns(ids);
    try {
      h.emulator.faults.setLatency(100, 'files/download');
      for (const id of ids) h.emulator.model.writeFile(id, '/p/new.md', `# new ${id}`);
      // The actors are idle in this process's memory: the other process publishes the wakes here.
      await other.engine.notify(ids);
      for (const id of ids) await waitUntil(async () => (await readMirror(h.dataDir, id)).has('/p/new.md'), 15_000, `${id} synced`);
      for (const id of ids) await h.waitForIdle(id);
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
      counted.stop();
    }
    expect(counted.most).toBe(1);
  });

  it('a waiting account another process took over and synced meanwhile is not run again here', async () => {
    const busy = 'dbid:slots-reaped-busy';
    const waiting = ['dbid:slots-reaped-0', 'dbid:slots-reaped-1'];
    addAccount(busy, Object.fromEntries(Array.from({ length: 6 }, (_, n) => [`/p/${n}.md`, `# ${n}`])));
    for (const id of waiting) addAccount(id);
    const reaper = await h.startPeer({ ownerId: 'slots-reaper', idleTimeoutMs: 60_000 });
    h.emulator.faults.setLatency(300, 'files/download');
    try {
      expect((await h.linkAccount(busy)).status).toBe(200);
      await waitUntil(() => state(busy) === 'downloading', 10_000, 'the busy account downloading');
      for (const id of waiting) expect((await h.linkAccount(id)).status).toBe(200);
      expect(waiting.every((id) => h.engine.host.handles(id) && !h.engine.host.actor(id))).toBe(true);
      // The other process's sweep finds them running with no lease, takes them and syncs them.
      expect((await reaper.engine.sweep()).reaped).toBe(waiting.length);
      for (const id of waiting) await waitUntil(async () => (await h.engine.mailbox.read(id)).status === 'idle' && (await readMirror(h.dataDir, id)).has('/p/a.md'), 15_000, `${id} synced by the other process`);
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    // Serving a wake means asking for the account's lease first: count those asks.
    const asked: string[] = [];
    const acquire = h.engine.leases.acquire.bind(h.engine.leases);
    h.engine.leases.acquire = async (accountId) => {
      asked.push(accountId);
      return acquire(accountId);
    };
    try {
      await h.waitForIdle(busy);
      await waitUntil(() => waiting.every((id) => !h.engine.host.handles(id)), 10_000, 'the waiting wakes to be served');
    } finally {
      h.engine.leases.acquire = acquire;
    }
    expect(asked.filter((id) => waiting.includes(id))).toEqual([]);
    expect(waiting.map(listings)).toEqual([1, 1]);
    expect(waiting.map((id) => h.engine.host.actor(id))).toEqual([undefined, undefined]);
  });
});

describe('an event that cuts a backoff short', () => {
  it("waits for a run slot like any other run: an operator's resync never runs past maxActiveRuns", async () => {
    // A process on a clock that never moves, so a backoff never ends by itself, whose calls get one
    // attempt each and a deadline longer than the test.
    const clock = new SimulatedClock();
    clock.set(Date.now());
    const dropbox = { appKey: APP_KEY, appSecret: APP_SECRET, hosts: { api: h.emulator.url, content: h.emulator.url }, callTimeoutMs: 60_000 };
    const p = await h.startPeer({ ownerId: 'slots-fake-time', maxActiveRuns: 1, clock, maxAttemptsPerCall: 1, dropbox });
    const failing = 'dbid:slots-cut-short';
    const busy = 'dbid:slots-cut-short-busy';
    addAccount(failing);
    addAccount(busy);
    const link = (id: string) => p.api(`/accounts/${id}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${id}` }) });
    const stateOf = (id: string) => String(p.engine.host.actor(id)?.getSnapshot().value);
    try {
      h.emulator.faults.inject({ route: 'files/list_folder', accountId: failing, status: 503 });
      expect((await link(failing)).status).toBe(200);
      await waitUntil(() => stateOf(failing) === 'backoff', 10_000, 'the backoff');
      // The busy account's listing hangs: its run holds the only slot.
      h.emulator.faults.inject({ route: 'files/list_folder', accountId: busy, hang: true });
      expect((await link(busy)).status).toBe(200);
      await waitUntil(() => h.emulator.stats.calls(busy, 'files/list_folder') === 1, 10_000, 'the busy account in its listing');
      expect(stateOf(busy)).toBe('fetching');

      expect((await p.api(`/accounts/${failing}/resync`, { method: 'POST' })).status).toBe(202);
      expect(stateOf(failing)).toBe('backoff'); // waiting for the slot, not running
      expect(p.engine.host.handles(failing)).toBe(true);

      // The slot frees (the busy account is unlinked): the resync runs.
      expect((await p.api(`/accounts/${busy}`, { method: 'DELETE' })).status).toBe(204);
      await waitUntil(async () => (await readMirror(h.dataDir, failing)).has('/p/a.md'), 10_000, 'the resync to sync');
      await waitUntil(() => stateOf(failing) === 'idle', 10_000, 'the resync to finish');
    } finally {
      h.emulator.faults.clear();
    }
  });
});

describe('a restart with more accounts mid-run than run slots', () => {
  it('restores every one at once and runs them maxActiveRuns at a time; the wait for a slot is not held against a state', async () => {
    const ids = Array.from({ length: 5 }, (_, n) => `dbid:slots-boot-${n}`);
    const placeholder = 'dbid:placeholder';
    const fetching = walkReachableStates(placeholder, Date.now()).find((s) => s.name === 'fetching')!;
    for (const id of ids) {
      addAccount(id);
      // Linked, then "crashed" mid-listing: no process owns it.
      await h.engine.accounts.link(id, { accessToken: `token-${id}` }, [], Date.now());
      const snapshot = JSON.parse(JSON.stringify(fetching.snapshot).replaceAll(placeholder, id)) as unknown;
      await new ActorPersistence(h.redis).save(id, 1, snapshot, 'fetching', Date.now());
    }
    // Which accounts have a Dropbox request in flight at once (the engine calls through global fetch).
    const realFetch = globalThis.fetch;
    const inFlight = new Map<string, number>();
    let most = 0;
    globalThis.fetch = async (input, init) => {
      const auth = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)).get('authorization') ?? '';
      const id = ids.find((candidate) => auth === `Bearer token-${candidate}`);
      if (!id) return realFetch(input, init);
      inFlight.set(id, (inFlight.get(id) ?? 0) + 1);
      most = Math.max(most, [...inFlight.values()].filter((n) => n > 0).length);
      try {
        return await realFetch(input, init);
      } finally {
        inFlight.set(id, inFlight.get(id)! - 1);
      }
    };
    // Each run lists for 300 ms, so the last account waits well over a second for the slot: longer
    // than its state's deadline, which the watchdog checks every 50 ms.
    h.emulator.faults.setLatency(300, 'files/list_folder');
    try {
      const peer = await h.startPeer({ ownerId: 'slots-boot', maxActiveRuns: 1, stateDeadlinesMs: { fetching: 1_000 }, watchdogIntervalMs: 50 });
      const restored = ids.map((id) => peer.engine.host.actor(id));
      expect(restored.every(Boolean)).toBe(true); // all in memory once boot resolved
      for (const id of ids) await h.waitForIdle(id, 20_000);
      // The same actors: none was restarted by the watchdog while it waited for the slot.
      expect(ids.map((id) => peer.engine.host.actor(id))).toEqual(restored);
    } finally {
      globalThis.fetch = realFetch;
      h.emulator.faults.setLatency(0, 'files/list_folder');
    }
    for (const id of ids) expect((await readMirror(h.dataDir, id)).has('/p/a.md')).toBe(true);
    expect(most).toBe(1);
  }, 30_000);
});

describe('a restored actor whose snapshot cannot be restored (a fresh actor and a resync)', () => {
  it('takes a run slot only through its step: unlinked while it waits, it keeps none for good', async () => {
    const ids = ['dbid:slots-leak-0', 'dbid:slots-leak-1'];
    for (const id of ids) {
      addAccount(id);
      await h.engine.accounts.link(id, { accessToken: `token-${id}` }, [], Date.now());
      // A snapshot from a newer engine: its state is unknown here.
      await new ActorPersistence(h.redis).save(id, 1, { status: 'active', value: 'somethingNew', context: { accountId: id } }, 'somethingNew', Date.now());
    }
    h.emulator.faults.setLatency(300, 'files/list_folder');
    let peer;
    try {
      peer = await h.startPeer({ ownerId: 'slots-leak', maxActiveRuns: 1 });
      // The second waits in line for the only slot; it is unlinked there.
      expect((await peer.api(`/accounts/${ids[1]}`, { method: 'DELETE' })).status).toBe(204);
      await waitUntil(async () => (await peer!.engine.mailbox.read(ids[0]!)).status === 'idle', 20_000, 'the first account synced');
    } finally {
      h.emulator.faults.setLatency(0, 'files/list_folder');
    }
    // The slot is free: a new account syncs.
    const next = 'dbid:slots-leak-next';
    addAccount(next);
    expect((await peer.api(`/accounts/${next}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${next}` }) })).status).toBe(200);
    await waitUntil(async () => (await peer!.engine.mailbox.read(next)).status === 'idle' && (await readMirror(h.dataDir, next)).has('/p/a.md'), 5_000, 'the new account synced');
  }, 40_000);
});

