import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Registry } from 'prom-client';
import { createMetrics } from '../../src/observability/metrics.js';
import { sampleOf } from '../support/metric-sample.js';
import { startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/** mailroom_syncs_started_total counts runs: every run, also one that follows another at once. */
let h: Harness;
let registry: Registry;
beforeAll(async () => {
  h = await startHarness({ dropboxCallTimeoutMs: 30_000 });
  registry = createMetrics(h.engine);
});
afterAll(async () => {
  registry.clear();
  await h.close();
});

const sample = (name: string, labels: Record<string, string> = {}) => sampleOf(registry, name, labels);

describe('mailroom_syncs_started_total', () => {
  it('counts the run a webhook during a run starts straight after it (finishing -> fetching, never idle)', async () => {
    const account = 'dbid:metrics-runs';
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/a.md', '# A');
    h.emulator.faults.setLatency(500, 'files/download');
    try {
      expect((await h.linkAccount(account)).status).toBe(200);
      await waitUntil(() => h.emulator.stats.calls(account, 'files/download') > 0, 10_000, 'the first run downloading');
      // A change and its webhook while the first run downloads: the run ends dirty and lists again at once.
      h.emulator.model.writeFile(account, '/b.md', '# B');
      await h.engine.notify([account]);
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    await h.waitForIdle(account);
    expect(await sample('mailroom_listing_passes_total')).toBe(2);
    expect(await sample('mailroom_syncs_started_total')).toBe(2);
  });
});
