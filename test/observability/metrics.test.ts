import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import type { Engine } from '../../src/engine/engine.js';
import { EngineEvents } from '../../src/engine/engine-events.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { ADMIN_TOKEN, APP_SECRET, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/** /metrics after real syncs: counters from the engine's events, gauges read at scrape time. */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

type Sample = { name: string; labels: Record<string, string>; value: number };

/** The Prometheus text format, samples only (comments skipped). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  const response = await fetch(`${h.url}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  return { text, samples: parse(text) };
}

describe('/metrics', () => {
  it('requires the admin token', async () => {
    expect((await fetch(`${h.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${h.url}/metrics`, { headers: { Authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
  });

  it('counts webhooks, syncs, listing passes, downloads and their bytes, and times states and calls; no account id anywhere', async () => {
    const account = 'dbid:metrics-a';
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/posts/one.md', '# One');
    h.emulator.model.writeFile(account, '/two.bin', '0123456789');
    await h.linkAccount(account);
    await h.waitForIdle(account);

    expect((await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: 'wrong', accounts: [account], attempts: 1 })).status).toBe(403);
    h.emulator.model.writeFile(account, '/three.txt', 'abc');
    expect((await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 })).status).toBe(200);
    await waitUntil(async () => value((await scrape()).samples, 'mailroom_downloads_total', { outcome: 'downloaded' }) === 3, 10_000, 'the third download');
    await h.waitForIdle(account);

    const { text, samples } = await scrape();
    expect(value(samples, 'mailroom_webhooks_total', { outcome: 'refused', reason: 'signature' })).toBe(1);
    expect(value(samples, 'mailroom_webhooks_total', { outcome: 'accepted', reason: 'none' })).toBe(1);
    expect(value(samples, 'mailroom_webhooks_total', { outcome: 'refused', reason: 'malformed' })).toBe(0);
    expect(value(samples, 'mailroom_syncs_started_total')).toBe(2);
    expect(value(samples, 'mailroom_listing_passes_total', { mode: 'full' })).toBe(1);
    expect(value(samples, 'mailroom_listing_passes_total', { mode: 'continue' })).toBe(1);
    expect(value(samples, 'mailroom_downloads_total', { outcome: 'downloaded' })).toBe(3);
    expect(value(samples, 'mailroom_downloads_total', { outcome: 'failed' })).toBe(0);
    expect(value(samples, 'mailroom_download_bytes_total')).toBe('# One'.length + 10 + 3);
    expect(value(samples, 'mailroom_actors_in_memory')).toBe(1);
    expect(value(samples, 'mailroom_queue_depth')).toBe(0);
    expect(value(samples, 'mailroom_linked_accounts')).toBe((await h.engine.accounts.linkedIds()).length);

    // One observation per state left: two runs, each idle > fetching > applying > downloading > finishing > idle.
    for (const state of ['fetching', 'applying', 'downloading', 'finishing']) expect(value(samples, 'mailroom_state_duration_seconds_count', { state })).toBe(2);
    expect(value(samples, 'mailroom_state_duration_seconds_count', { state: 'idle' })).toBe(2); // created idle, then idle between the runs
    expect(value(samples, 'mailroom_state_duration_seconds_bucket', { state: 'fetching', le: '+Inf' })).toBe(2);

    const dropboxRoutes = new Set(samples.filter((s) => s.name === 'mailroom_dropbox_call_duration_seconds_count').map((s) => `${s.labels.route} ${s.labels.status}`));
    expect([...dropboxRoutes].some((r) => /list_folder 200$/.test(r))).toBe(true);
    expect([...dropboxRoutes].some((r) => /download 200$/.test(r))).toBe(true);

    expect(value(samples, 'mailroom_redis_up')).toBe(1);
    expect(value(samples, 'mailroom_redis_command_duration_seconds_count', { command: 'ping' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(value(samples, 'nodejs_eventloop_lag_seconds')).toBeDefined();

    // Bounded labels: no account id, no path, no token in the whole exposition.
    expect(text).not.toContain('metrics-a');
    expect(text).not.toContain('dbid:');
    expect(text).not.toContain('two.bin');
    expect(text).not.toContain(`token-${account}`);
    const labelNames = new Set(samples.flatMap((s) => Object.keys(s.labels)));
    // Not 'kind': no download failed here (the next test counts failures by kind), and Node's own
    // GC histogram has it only once a collection happened during the run.
    expect([...labelNames].sort()).toEqual(expect.arrayContaining(['outcome', 'reason', 'mode', 'state', 'route', 'status', 'command']));
    expect(labelNames.has('accountId') || labelNames.has('account') || labelNames.has('path')).toBe(false);
  });

  it('counts failed downloads by kind and shows the queue of an account stuck in backoff', async () => {
    const account = 'dbid:metrics-b';
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/bad.md', '# Bad bytes');
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/bad.md', corrupt: true, times: Infinity });
    await h.linkAccount(account);
    await waitUntil(async () => (await h.status(account)).state === 'backoff', 10_000, 'the backoff');

    const { text, samples } = await scrape();
    expect(value(samples, 'mailroom_download_errors_total', { kind: 'content_mismatch' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'mailroom_downloads_total', { outcome: 'failed' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'mailroom_queue_depth')).toBe(1);
    expect(value(samples, 'mailroom_actors_in_memory')).toBe(2);
    expect(text).not.toContain('metrics-b');
    h.emulator.faults.clear();
  });
});

describe('mailroom_credentials_refused_total', () => {
  it('counts accounts Dropbox refused, which then leave the queue depth: they wait for a re-link', async () => {
    const account = 'dbid:metrics-refused';
    expect(value((await scrape()).samples, 'mailroom_credentials_refused_total')).toBe(0);
    // No other account's queue in the gauge (an earlier test's retry may still be under way).
    await waitUntil(async () => value((await scrape()).samples, 'mailroom_queue_depth') === 0, 10_000, 'no queue in the gauge');
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    // More files than downloads at once (4): some are asked for after the token is revoked.
    for (let n = 0; n < 12; n++) h.emulator.model.writeFile(account, `/${n}.md`, `# ${n}`);
    h.emulator.faults.setLatency(200, 'files/download');
    try {
      await h.linkAccount(account);
      await waitUntil(() => h.emulator.stats.calls(account, 'files/download') > 0, 10_000, 'the downloads');
      h.emulator.model.tokens.revokeAccount(account);
      await waitUntil(async () => (await h.status(account)).state === 'awaitingRelink', 10_000, 'the wait for a re-link');
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    const { text, samples } = await scrape();
    expect(value(samples, 'mailroom_credentials_refused_total')).toBe(1);
    expect((await h.status(account)).pending).toBeGreaterThan(0);
    expect(value(samples, 'mailroom_queue_depth')).toBe(0); // its queue waits for the re-link
    expect(text).not.toContain('metrics-refused');
  });
});

describe('mailroom_queue_depth', () => {
  it('reads only the queues of accounts with a run going: an idle account is dropped at once, not kept until its actor leaves', async () => {
    const events = new EngineEvents();
    const inMemory = new Set<string>();
    const read: string[] = [];
    const engine = {
      events,
      host: { size: 0, actor: (id: string) => (inMemory.has(id) ? {} : undefined) },
      store: { pendingCount: async (id: string) => (read.push(id), 1) },
      options: { redis: { ping: async () => 'PONG' } },
    } as unknown as Engine;
    const registry = createMetrics(engine);
    const depth = async () => {
      read.length = 0;
      const metric = await registry.getSingleMetric('mailroom_queue_depth')!.get();
      return metric.values[0]!.value;
    };
    for (const id of ['a', 'b']) {
      inMemory.add(id);
      events.report('state', { accountId: id, from: 'idle', to: 'fetching', durationMs: 1 });
      events.report('queued', { accountId: id, total: 1 });
    }
    expect(await depth()).toBe(2);
    // 'a' finished its run; its actor is still in memory until it is passivated.
    events.report('state', { accountId: 'a', from: 'finishing', to: 'idle', durationMs: 1 });
    expect(await depth()).toBe(1);
    expect(read).toEqual(['b']);
    // A run that stopped here without going idle (its actor left) is dropped at the next scrape.
    inMemory.delete('b');
    expect(await depth()).toBe(0);
    expect(read).toEqual([]);
    registry.clear();
  });
});
