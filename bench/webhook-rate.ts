import { Worker } from 'node:worker_threads';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { serve } from '@hono/node-server';
import { Registry } from 'prom-client';
import { createApp } from '../src/http/app.js';
import { silentLogger } from '../src/logger.js';
import { ADMIN_TOKEN, APP_SECRET, mainThreadCpuUs, signedWebhook, median, percentile, round, startStack, type BenchOptions, type FigureResult, type Stack } from './lib.js';

/**
 * Figure 1: signed webhooks accepted per second (HMAC check + the atomic Redis step) against a bare
 * Hono route answering 200 on the same server, then p50/p99 latency at half the webhook rate.
 * The webhooks name linked accounts whose run is going (mailbox `running`), so each one is exactly
 * the webhook's own work: verify, parse, one script; no actor is woken.
 *
 * Both routes live on one Hono app, `createApp()` served as `src/main.ts` serves it, with the bare
 * route added to it: same server, router, connections and keep-alive. (Mounted under another app,
 * as the stack's server does for the ablations, every route of `createApp()` would be wrapped in
 * an error-handler layer that production does not have.)
 */
type Closed = { ok: number; failed: number; seconds: number; perSecond: number };
/** Latencies in ms: `latencies` from each request's scheduled time, `fromDispatch` from the tick that sent or queued it. */
type Open = { latencies: number[]; fromDispatch: number[]; failed: number; sent: number };

function load<T>(data: Record<string, unknown>): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker.mjs', import.meta.url), { workerData: data });
    worker.once('message', (m) => resolve(m as T));
    worker.once('error', reject);
    worker.once('exit', (code) => { if (code !== 0) reject(new Error(`load worker exited with ${code}`)); });
  });
}

/** A closed-loop round, with the main thread's CPU µs per answered request. */
async function closedRound(data: Record<string, unknown>): Promise<Closed & { cpuUsPerRequest: number | null }> {
  const cpu = mainThreadCpuUs();
  const result = await load<Closed>({ mode: 'closed', ...data });
  const after = mainThreadCpuUs();
  return { ...result, cpuUsPerRequest: cpu === null || after === null || result.ok === 0 ? null : (after - cpu) / result.ok };
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

/** Enough that a stall of a few ms at the half rate queues on the server, not in the generator. */
const OPEN_LOOP_CONNECTIONS = 64;

const medianOrNull = (xs: readonly (number | null)[]): number | null => (xs.every((x): x is number => x !== null) ? median(xs) : null);

export async function webhookRate(options: BenchOptions): Promise<FigureResult> {
  const rounds = options.quick ? 1 : 6;
  const durationMs = Number(process.env.BENCH_ROUND_MS ?? 0) || (options.quick ? 300 : 3_000);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 0) || 32;
  const stack = await startStack();
  // A registry of its own: the stack's app already feeds one from the engine's events, and a second
  // set of listeners would charge every webhook twice for its metrics.
  const app = createApp({ engine: stack.engine, redis: stack.redis, appSecret: APP_SECRET, adminToken: ADMIN_TOKEN, log: silentLogger, metrics: new Registry() });
  app.post('/bare', (c) => c.text('', 200));
  const server = await new Promise<Server>((resolve) => {
    const created = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const accounts = Array.from({ length: 100 }, (_, i) => `dbid:rate-${i}`);
    for (const id of accounts) await stack.engine.accounts.link(id, { accessToken: `t-${id}` }, [], Date.now()); // status running, no actor
    const requests = accounts.map((id) => signedWebhook([id]));
    const bareRequests = [{ body: requests[0]!.body, headers: { 'Content-Type': 'application/json' } }];
    const bareRun = { url, path: '/bare', requests: bareRequests, connections, durationMs };
    const hookRun = { url, path: '/webhooks/dropbox', requests, connections, durationMs };
    // Warm-up of both sides (JIT, connections), so the first round is not the cold one of either.
    const warmMs = Math.min(durationMs, 1_000);
    await load<Closed>({ mode: 'closed', ...bareRun, durationMs: warmMs });
    await load<Closed>({ mode: 'closed', ...hookRun, durationMs: warmMs });
    const bare: number[] = [];
    const hooks: number[] = [];
    const bareCpu: (number | null)[] = [];
    const hookCpu: (number | null)[] = [];
    for (let r = 0; r < rounds; r++) {
      // Alternating which side goes first cancels a drift of the machine's load within a round.
      const first = r % 2 === 0 ? bareRun : hookRun;
      const a = await closedRound(first);
      const c = await closedRound(first === bareRun ? hookRun : bareRun);
      const [b, w] = first === bareRun ? [a, c] : [c, a];
      if (w.failed) throw new Error(`${w.failed} webhooks were not answered 200`);
      if (b.failed) throw new Error(`${b.failed} bare requests were not answered 200`);
      bare.push(b.perSecond);
      hooks.push(w.perSecond);
      bareCpu.push(b.cpuUsPerRequest);
      hookCpu.push(w.cpuUsPerRequest);
      const cpu = b.cpuUsPerRequest !== null && w.cpuUsPerRequest !== null ? `; main-thread CPU per request bare ${b.cpuUsPerRequest.toFixed(1)} µs, webhook ${w.cpuUsPerRequest.toFixed(1)} µs` : '';
      options.log(`  round ${r + 1}: bare ${Math.round(b.perSecond)}/s, webhook ${Math.round(w.perSecond)}/s (${(w.perSecond / b.perSecond).toFixed(3)})${cpu}`);
    }
    // Ablations: where the gap between the bare route and the webhook goes. Their routes are on the
    // stack's server (bench/lib.ts), so they are compared with the bare route of that server.
    const ablation: Record<string, number[]> = { bareStackServer: [], bareBody: [], bareHmac: [], bareLimitHmac: [], barePing: [], hmacNotify: [], notifyOnlyNoHttp: [] };
    const onStack = (path: string, reqs: unknown) => load<Closed>({ mode: 'closed', url: stack.url, path, requests: reqs, connections, durationMs }).then((x) => x.perSecond);
    for (let r = 0; r < Math.min(rounds, 3); r++) {
      ablation.bareStackServer!.push(await onStack('/bare', bareRequests));
      ablation.bareBody!.push(await onStack('/bare-body', requests));
      ablation.bareHmac!.push(await onStack('/bare-hmac', requests));
      ablation.bareLimitHmac!.push(await onStack('/bare-limit-hmac', requests));
      ablation.barePing!.push(await onStack('/bare-ping', bareRequests));
      ablation.hmacNotify!.push(await onStack('/hmac-notify', requests));
      ablation.notifyOnlyNoHttp!.push(await notifyLoop(stack, accounts, connections, durationMs));
    }
    const rate = median(hooks);
    const bareRate = median(bare);
    const ratios = hooks.map((h, i) => h / bare[i]!);
    const halfRate = Math.max(10, Math.floor(rate / 2));
    // Per round: [webhook p50, webhook p99, bare p50, bare p99], each from dispatch and from schedule.
    const fromDispatch: number[][] = [];
    const fromSchedule: number[][] = [];
    const pooledDispatch: number[] = [];
    const pooledSchedule: number[] = [];
    const quartet = (w: number[], b: number[]) => [percentile(w, 50), percentile(w, 99), percentile(b, 50), percentile(b, 99)];
    for (let r = 0; r < rounds; r++) {
      const w = await load<Open>({ mode: 'open', ...hookRun, connections: OPEN_LOOP_CONNECTIONS, rate: halfRate });
      const b = await load<Open>({ mode: 'open', ...bareRun, connections: OPEN_LOOP_CONNECTIONS, rate: halfRate });
      // A request that failed has no latency to report: it must fail the figure, not leave the tail.
      if (w.failed || b.failed) throw new Error(`open loop: ${w.failed} webhooks and ${b.failed} bare requests were not answered 200`);
      fromDispatch.push(quartet(w.fromDispatch, b.fromDispatch));
      fromSchedule.push(quartet(w.latencies, b.latencies));
      for (const x of w.fromDispatch) pooledDispatch.push(x);
      for (const x of w.latencies) pooledSchedule.push(x);
      const [p50, p99, bareP50, bareP99] = fromDispatch.at(-1)!.map((x) => x.toFixed(2));
      const [sp50, sp99, sBareP50, sBareP99] = fromSchedule.at(-1)!.map((x) => x.toFixed(2));
      options.log(`  at ${halfRate}/s: webhook p50 ${p50} ms p99 ${p99} ms, bare p50 ${bareP50} p99 ${bareP99} (from the scheduled time: webhook ${sp50} / ${sp99}, bare ${sBareP50} / ${sBareP99})`);
    }
    const medianOf = (rows: number[][], column: number) => median(rows.map((row) => row[column]!));
    const p99 = medianOf(fromDispatch, 1);
    const p99AllRounds = percentile(pooledDispatch, 99);
    const ratio = median(ratios);
    const cpuBare = medianOrNull(bareCpu);
    const cpuHook = medianOrNull(hookCpu);
    const bareStack = median(ablation.bareStackServer!);
    return {
      id: '1',
      name: 'signed webhooks accepted / s',
      measured: round(rate, 0),
      unit: 'req/s',
      baseline: round(bareRate, 0),
      baselineLabel: 'bare Hono route, same app and server',
      ratio: round(ratio, 3),
      ratioLabel: 'median of per-round ratios',
      target: '≥ 0.8 × bare; p99 ≤ 5 ms at half rate',
      // Both p99s must hold: the median of the rounds' p99s hides one bad round, the pooled one does not.
      met: ratio >= 0.8 && p99 <= 5 && p99AllRounds <= 5,
      details: {
        rounds,
        durationMsPerRound: durationMs,
        connections,
        webhookPerRound: hooks.map((x) => Math.round(x)),
        barePerRound: bare.map((x) => Math.round(x)),
        ratioPerRound: ratios.map((x) => round(x, 3)),
        mainThreadCpuUsPerRequest: { bare: round(cpuBare, 1), webhook: round(cpuHook, 1), bareOverWebhook: cpuBare !== null && cpuHook !== null ? round(cpuBare / cpuHook, 3) : null },
        halfRate,
        openLoopConnections: OPEN_LOOP_CONNECTIONS,
        latencyFrom: 'the generator tick that sent or queued each request (its own timer lateness left out); fromScheduledTime counts that too',
        p50Ms: round(medianOf(fromDispatch, 0), 3),
        p99Ms: round(p99, 3),
        p99MsAllRoundsPooled: round(p99AllRounds, 3),
        bareP50MsAtSameRate: round(medianOf(fromDispatch, 2), 3),
        bareP99MsAtSameRate: round(medianOf(fromDispatch, 3), 3),
        fromScheduledTime: {
          p50Ms: round(medianOf(fromSchedule, 0), 3),
          p99Ms: round(medianOf(fromSchedule, 1), 3),
          p99MsAllRoundsPooled: round(percentile(pooledSchedule, 99), 3),
          bareP50Ms: round(medianOf(fromSchedule, 2), 3),
          bareP99Ms: round(medianOf(fromSchedule, 3), 3),
        },
        ablationPerSecond: {
          bareRouteOnTheStackServer: Math.round(bareStack),
          bareRouteReadingBody: Math.round(median(ablation.bareBody!)),
          bareRouteWithHmacAndParse: Math.round(median(ablation.bareHmac!)),
          bareRouteWithBodyLimitHmacAndParse: Math.round(median(ablation.bareLimitHmac!)),
          bareRouteAwaitingOneRedisPing: Math.round(median(ablation.barePing!)),
          webhookViaHonoArrayBuffer: Math.round(median(ablation.hmacNotify!)),
          engineNotifyAloneNoHttp: Math.round(median(ablation.notifyOnlyNoHttp!)),
        },
      },
    };
  } finally {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await stack.close();
  }
}
