import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { signedWebhook, median, percentile, round, startStack, type BenchOptions, type FigureResult, type Stack } from './lib.js';

/**
 * Figure 1: signed webhooks accepted per second (HMAC check + the atomic Redis step) against a bare
 * Hono route answering 200 on the same server, then p50/p99 latency at half the webhook rate.
 * The webhooks name linked accounts whose run is going (mailbox `running`), so each one is exactly
 * the webhook's own work: verify, parse, one script; no actor is woken.
 */
type Closed = { ok: number; failed: number; seconds: number; perSecond: number };
type Open = { latencies: number[]; failed: number; sent: number };

function load<T>(data: Record<string, unknown>): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker.mjs', import.meta.url), { workerData: data });
    worker.once('message', (m) => resolve(m as T));
    worker.once('error', reject);
    worker.once('exit', (code) => { if (code !== 0) reject(new Error(`load worker exited with ${code}`)); });
  });
}

/** `concurrency` loops calling engine.notify (the webhook's Redis step) back to back, no HTTP: per second. */
async function notifyLoop(stack: Stack, accounts: readonly string[], concurrency: number, durationMs: number): Promise<number> {
  let done = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(Array.from({ length: concurrency }, async (_, i) => {
    let n = i;
    while (performance.now() < end) {
      await stack.engine.notify([accounts[n++ % accounts.length]!]);
      done++;
    }
  }));
  return done / ((performance.now() - start) / 1000);
}

export async function webhookRate(options: BenchOptions): Promise<FigureResult> {
  const rounds = options.quick ? 1 : 5;
  const durationMs = Number(process.env.BENCH_ROUND_MS ?? 0) || (options.quick ? 300 : 3_000);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 0) || 32;
  const stack = await startStack();
  try {
    const accounts = Array.from({ length: 100 }, (_, i) => `dbid:rate-${i}`);
    for (const id of accounts) await stack.engine.accounts.link(id, { accessToken: `t-${id}` }, [], Date.now()); // status running, no actor
    const requests = accounts.map((id) => signedWebhook([id]));
    const bareRequests = [{ body: requests[0]!.body, headers: { 'Content-Type': 'application/json' } }];
    const bare: number[] = [];
    const hooks: number[] = [];
    await load<Closed>({ mode: 'closed', url: stack.url, path: '/webhooks/dropbox', requests, connections, durationMs: Math.min(durationMs, 500) }); // warm-up
    for (let r = 0; r < rounds; r++) {
      const b = await load<Closed>({ mode: 'closed', url: stack.url, path: '/bare', requests: bareRequests, connections, durationMs });
      const w = await load<Closed>({ mode: 'closed', url: stack.url, path: '/webhooks/dropbox', requests, connections, durationMs });
      if (w.failed) throw new Error(`${w.failed} webhooks were not answered 200`);
      bare.push(b.perSecond);
      hooks.push(w.perSecond);
      options.log(`  round ${r + 1}: bare ${Math.round(b.perSecond)}/s, webhook ${Math.round(w.perSecond)}/s`);
    }
    // Ablations: where the gap between the bare route and the webhook goes.
    const ablation: Record<string, number[]> = { bareBody: [], bareHmac: [], bareLimitHmac: [], barePing: [], hmacNotify: [], notifyOnlyNoHttp: [] };
    for (let r = 0; r < Math.min(rounds, 3); r++) {
      ablation.bareBody!.push((await load<Closed>({ mode: 'closed', url: stack.url, path: '/bare-body', requests, connections, durationMs })).perSecond);
      ablation.bareHmac!.push((await load<Closed>({ mode: 'closed', url: stack.url, path: '/bare-hmac', requests, connections, durationMs })).perSecond);
      ablation.bareLimitHmac!.push((await load<Closed>({ mode: 'closed', url: stack.url, path: '/bare-limit-hmac', requests, connections, durationMs })).perSecond);
      ablation.barePing!.push((await load<Closed>({ mode: 'closed', url: stack.url, path: '/bare-ping', requests: bareRequests, connections, durationMs })).perSecond);
      ablation.hmacNotify!.push((await load<Closed>({ mode: 'closed', url: stack.url, path: '/hmac-notify', requests, connections, durationMs })).perSecond);
      ablation.notifyOnlyNoHttp!.push(await notifyLoop(stack, accounts, connections, durationMs));
    }
    const rate = median(hooks);
    const bareRate = median(bare);
    const ratios = hooks.map((h, i) => h / bare[i]!);
    const halfRate = Math.max(10, Math.floor(rate / 2));
    const p50s: number[] = [];
    const p99s: number[] = [];
    const bareP99s: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const w = await load<Open>({ mode: 'open', url: stack.url, path: '/webhooks/dropbox', requests, connections: 256, durationMs, rate: halfRate });
      const b = await load<Open>({ mode: 'open', url: stack.url, path: '/bare', requests: bareRequests, connections: 256, durationMs, rate: halfRate });
      p50s.push(percentile(w.latencies, 50));
      p99s.push(percentile(w.latencies, 99));
      bareP99s.push(percentile(b.latencies, 99));
      options.log(`  at ${halfRate}/s: webhook p50 ${percentile(w.latencies, 50).toFixed(2)} ms p99 ${percentile(w.latencies, 99).toFixed(2)} ms; bare p99 ${percentile(b.latencies, 99).toFixed(2)} ms`);
    }
    const ratio = median(ratios);
    const p99 = median(p99s);
    return {
      id: '1',
      name: 'signed webhooks accepted / s',
      measured: round(rate, 0),
      unit: 'req/s',
      baseline: round(bareRate, 0),
      baselineLabel: 'bare Hono route, same server',
      ratio: round(ratio, 3),
      ratioLabel: 'median of per-round ratios',
      target: '≥ 0.8 × bare; p99 ≤ 5 ms at half rate',
      met: ratio >= 0.8 && p99 <= 5,
      details: {
        rounds,
        durationMsPerRound: durationMs,
        connections,
        webhookPerRound: hooks.map((x) => Math.round(x)),
        barePerRound: bare.map((x) => Math.round(x)),
        halfRate,
        p50Ms: round(median(p50s), 3),
        p99Ms: round(p99, 3),
        bareP99MsAtSameRate: round(median(bareP99s), 3),
        ablationPerSecond: {
          bareRouteReadingBody: Math.round(median(ablation.bareBody!)),
          bareRouteWithHmacAndParse: Math.round(median(ablation.bareHmac!)),
          bareRouteWithBodyLimitHmacAndParse: Math.round(median(ablation.bareLimitHmac!)),
          bareRouteAwaitingOneRedisPing: Math.round(median(ablation.barePing!)),
          webhookWithoutBodyLimit: Math.round(median(ablation.hmacNotify!)),
          engineNotifyAloneNoHttp: Math.round(median(ablation.notifyOnlyNoHttp!)),
        },
      },
    };
  } finally {
    await stack.close();
  }
}
