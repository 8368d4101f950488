import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Registry } from 'prom-client';
import { createMetrics } from '../../src/observability/metrics.js';
import { sampleOf } from '../support/metric-sample.js';
import { startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * A download cut short because the actor stopped (an unlink, a shutdown, the watchdog, another
 * process taking the account over) did not fail: the counters of failed downloads must not move,
 * or every deploy looks like a burst of internal errors.
 */
let h: Harness;
let registry: Registry;
const lines: string[] = [];
beforeAll(async () => {
  h = await startHarness({ logLines: lines, dropboxCallTimeoutMs: 30_000 });
  registry = createMetrics(h.engine);
});
afterAll(async () => {
  registry.clear();
  await h.close();
});

const sample = (name: string, labels: Record<string, string> = {}) => sampleOf(registry, name, labels);

describe('downloads cut short by a stop', () => {
  it('are not counted as failed downloads or download errors', async () => {
    const account = 'dbid:metrics-aborted';
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    for (let n = 0; n < 6; n++) h.emulator.model.writeFile(account, `/${n}.md`, `# ${n}`);
    h.emulator.faults.setLatency(20_000, 'files/download');
    try {
      expect((await h.linkAccount(account)).status).toBe(200);
      await waitUntil(() => h.emulator.stats.calls(account, 'files/download') >= 4, 10_000, 'downloads in flight');
      // The unlink stops the actor: its downloads in flight are aborted.
      expect((await h.api(`/accounts/${account}`, { method: 'DELETE' })).status).toBe(204);
      await waitUntil(() => lines.some((line) => line.includes(account) && line.includes('"msg":"downloads done"')), 10_000, 'the download step to end');
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    expect(await sample('mailroom_downloads_total', { outcome: 'failed' })).toBe(0);
    expect(await sample('mailroom_download_errors_total')).toBe(0);
  });
});
