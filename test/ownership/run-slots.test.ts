import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

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
  it('an account that keeps failing (a revoked token) gives its slot back while it backs off', async () => {
    const revoked = 'dbid:slots-revoked';
    const healthy = 'dbid:slots-healthy';
    addAccount(revoked);
    expect((await h.linkAccount(revoked, { accessToken: 'a-token-dropbox-refuses' })).status).toBe(200);
    await waitUntil(async () => (await h.status(revoked)).lastError?.kind === 'auth', 10_000, 'the auth failure');
    expect(state(revoked)).toBe('backoff');

    addAccount(healthy);
    expect((await h.linkAccount(healthy)).status).toBe(200);
    await h.waitForIdle(healthy, 10_000);
    // Still failing, still in memory, retrying on its own deadline.
    expect(h.engine.host.actor(revoked)).toBeDefined();
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
