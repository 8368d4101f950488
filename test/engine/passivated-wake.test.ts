import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { CommandLog, scriptRuns } from '../support/redis-monitor.js';
import { expectConverged, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

let h: Harness;
let log: CommandLog;
beforeAll(async () => {
  h = await startHarness({ engine: { idleTimeoutMs: 50 } });
  log = await CommandLog.start(h.redis);
});
afterAll(async () => {
  log.stop();
  await h.close();
});

describe('waking a passivated account', () => {
  it('builds its Dropbox session from what the lease grant read: the link is not read again', async () => {
    const account = 'dbid:passivated-wake';
    const k = accountKeys(account);
    h.emulator.model.addAccount(account, { accessToken: 'tok-passivated' });
    h.emulator.model.writeFile(account, '/posts/a.md', '# A');
    await h.linkAccount(account, { accessToken: 'tok-passivated' });
    await h.waitForIdle(account);
    await waitUntil(() => !h.engine.host.actor(account), 5_000, 'the idle actor to be passivated');

    // Waited for through the engine's events: the status API would read the link itself.
    const synced = new Promise<void>((resolve) => {
      h.engine.events.on('state', ({ accountId, to }) => {
        if (accountId === account && to === 'idle') resolve();
      });
    });
    const sent = await log.during(h.redis, async () => {
      h.emulator.model.writeFile(account, '/posts/b.md', '# B');
      await h.engine.notify([account]);
      await synced;
    });

    // The link (its credentials) is read by the lease grant and by nothing else.
    expect(scriptRuns(sent, 'leaseAcquire')).toBeGreaterThan(0);
    expect(scriptRuns(sent, 'accountRead')).toBe(0);
    expect(sent.filter((args) => !/^eval/i.test(args[0]!) && args.includes(k.credentials))).toEqual([]);

    await expectConverged(h, account);
  });
});
