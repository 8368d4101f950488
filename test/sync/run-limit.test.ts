import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectConverged, startHarness, type Harness } from '../support/sync-harness.js';

/** A storm of wakes: only MAX_ACTIVE_RUNS accounts sync at once, the rest wait their turn, none is lost. */
let h: Harness;
beforeAll(async () => { h = await startHarness({ engine: { maxActiveRuns: 2 } }); });
afterAll(async () => { await h.close(); });

describe('the run limit', () => {
  it('runs at most maxActiveRuns accounts at once and every waiting account still syncs', async () => {
    const accounts = Array.from({ length: 6 }, (_, i) => `dbid:limit-${i}`);
    h.emulator.faults.setLatency(15, 'files/download');
    let running = 0;
    let maxRunning = 0;
    h.engine.events.on('state', ({ from, to }) => {
      if (from === 'idle' && to !== 'idle') running++;
      if (to === 'idle' && from !== 'idle') running--;
      maxRunning = Math.max(maxRunning, running);
    });
    for (const [i, id] of accounts.entries()) {
      h.emulator.model.addAccount(id, { accessToken: `tok-${i}` });
      for (let n = 0; n < 10; n++) h.emulator.model.writeFile(id, `/p/${n}.md`, `# ${id} ${n}`);
    }
    await Promise.all(accounts.map((id, i) => h.linkAccount(id, { accessToken: `tok-${i}` })));
    for (const id of accounts) await h.waitForIdle(id, 30_000);
    for (const id of accounts) await expectConverged(h, id);
    expect(maxRunning).toBe(2);
  });

  it('a sweep during a storm leaves the accounts waiting for a run slot to this process', async () => {
    const accounts = Array.from({ length: 6 }, (_, i) => `dbid:sweep-wait-${i}`);
    // Long enough that the two running accounts hold both slots while the sweep reads every mailbox.
    h.emulator.faults.setLatency(400, 'files/download');
    for (const [i, id] of accounts.entries()) {
      h.emulator.model.addAccount(id, { accessToken: `tok-sw-${i}` });
      h.emulator.model.writeFile(id, '/p/a.md', `# ${id}`);
    }
    await Promise.all(accounts.map((id, i) => h.linkAccount(id, { accessToken: `tok-sw-${i}` })));
    const waiting = accounts.filter((id) => h.engine.host.handles(id) && !h.engine.host.actor(id));
    expect(waiting).toHaveLength(4); // dirty, running in Redis, no lease, no actor: what the reaper looks for

    const { reaped } = await h.engine.sweep();

    expect(reaped).toBe(0);
    h.emulator.faults.setLatency(0, 'files/download');
    for (const id of accounts) await h.waitForIdle(id, 30_000);
    for (const id of accounts) await expectConverged(h, id);
  });
});
