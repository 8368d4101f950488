import { existsSync, mkdtempSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mirrorFolder } from '../src/sync/sync-deps.js';
import { BareSync } from './bare-sync.js';
import { isIdle, linkAccount, median, nowUs, percentile, recordPhase, round, startStack, waitUntil, WebhookPoster, type BenchOptions, type FigureResult } from './lib.js';

/**
 * Figure 5: a one-file change, from the webhook's POST to the file on disk (emulator without
 * latency), against the bare script's list_folder/continue + download + write of that file from
 * its own cursor. Both synced the same 100-file folder first; rounds alternate.
 */
export async function changeLatency(options: BenchOptions): Promise<FigureResult> {
  const rounds = options.quick ? 3 : 30;
  // Untimed rounds first, both sides alike: a running engine serves webhooks with its code compiled
  // by V8's optimising tier, and 30 rounds alone would mostly time code still being warmed up.
  const warmupRounds = options.quick ? 0 : Number(process.env.BENCH_WARMUP_ROUNDS ?? 50);
  const stack = await startStack({ engine: { idleTimeoutMs: 600_000 } });
  const bareDir = mkdtempSync(join(tmpdir(), 'mailroom-bench-bare-'));
  const account = 'dbid:latency';
  const bareAccount = 'dbid:latency-bare';
  const engineMs: number[] = [];
  const bareMs: number[] = [];
  const atomicMs: number[] = [];
  const atomicAccount = 'dbid:latency-atomic';
  let poster: WebhookPoster | undefined;
  try {
    for (const id of [account, bareAccount, atomicAccount]) {
      stack.emulator.model.addAccount(id, { accessToken: `token-${id}` });
      for (let i = 0; i < 100; i++) stack.emulator.model.writeFile(id, `/base/${i}.txt`, `file ${i}`);
    }
    await linkAccount(stack, account);
    await waitUntil(() => isIdle(stack, account), 30_000, 'the first sync');
    const bare = new BareSync(stack.emulator.url, `token-${bareAccount}`, bareDir, 500);
    await bare.sync(8);
    const atomic = new BareSync(stack.emulator.url, `token-${atomicAccount}`, join(bareDir, 'atomic'), 500, true);
    await atomic.sync(8);
    const mirror = mirrorFolder(stack.dataDir, account);
    // When each state is entered, relative to the webhook's POST: where the time goes.
    const phases: Record<string, number[]> = {};
    let roundStart = 0;
    let timed = false;
    let seen = new Set<string>();
    stack.engine.host.actor(account)!.subscribe((s) => {
      const state = String(s.value);
      if (timed && roundStart && !seen.has(state)) {
        seen.add(state);
        (phases[state] ??= []).push(performance.now() - roundStart);
      }
    });

    poster = await WebhookPoster.open(stack.url);
    for (let r = 0; r < warmupRounds + rounds; r++) {
      timed = r >= warmupRounds;
      const name = `/change-${r}.txt`;
      stack.emulator.model.writeFile(account, name, `change ${r}`);
      let phase = nowUs();
      let started = performance.now();
      roundStart = started;
      seen = new Set();
      const status = await poster.post([account]);
      const answeredMs = performance.now() - started;
      if (status !== 200) throw new Error(`webhook answered ${status}`);
      await fileAppears(mirror, name, 10_000);
      const engineRoundMs = performance.now() - started;
      await waitUntil(() => isIdle(stack, account), 10_000, 'the run to end', 2);
      roundStart = 0;
      if (timed) {
        (phases['webhook answered'] ??= []).push(answeredMs);
        engineMs.push(engineRoundMs);
        (phases['file on disk'] ??= []).push(engineRoundMs);
        recordPhase('engine', phase);
      }

      stack.emulator.model.writeFile(bareAccount, name, `change ${r}`);
      phase = nowUs();
      started = performance.now();
      const changed = await bare.list();
      await bare.download(changed, 8);
      if (timed) {
        bareMs.push(performance.now() - started);
        recordPhase('bare', phase);
      }
      if (!existsSync(join(bareDir, name))) throw new Error('the bare script missed the change');

      stack.emulator.model.writeFile(atomicAccount, name, `change ${r}`);
      started = performance.now();
      await atomic.download(await atomic.list(), 8);
      if (timed) atomicMs.push(performance.now() - started);
    }
    const measured = median(engineMs);
    const baseline = median(bareMs);
    const ratio = median(engineMs.map((e, i) => e / bareMs[i]!));
    options.log(`  engine median ${measured.toFixed(2)} ms (p90 ${percentile(engineMs, 90).toFixed(2)}), bare ${baseline.toFixed(2)} ms`);
    return {
      id: '5',
      name: 'webhook → file on disk, one-file change, no latency',
      measured: round(measured, 2),
      unit: 'ms',
      baseline: round(baseline, 2),
      baselineLabel: 'bare script continue+download+write',
      ratio: round(ratio, 3),
      target: '≤ 2 × bare',
      met: ratio <= 2,
      details: { rounds, warmupRounds, medianMsAtEachStep: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(median(v), 2)]).sort((a, b) => (a[1] as number) - (b[1] as number))), bareWithEnginesAtomicFsyncWriteMs: round(median(atomicMs), 2), ratioToThat: round(median(engineMs.map((e, i) => e / atomicMs[i]!)), 3), engineP90Ms: round(percentile(engineMs, 90), 2), bareP90Ms: round(percentile(bareMs, 90), 2) },
    };
  } finally {
    poster?.close();
    await stack.close();
    rmSync(bareDir, { recursive: true, force: true });
  }
}

/**
 * Resolves when `name` exists in `folder`: woken by the folder's change events (the engine's rename
 * into place), so the clock stops when the file lands and not at the next poll (a 1 ms timer would
 * add about half a millisecond to every round, and a busy poll would take CPU from the engine).
 */
function fileAppears(folder: string, name: string, timeoutMs: number): Promise<void> {
  const target = join(folder, name);
  return new Promise((resolve, reject) => {
    const finish = (error?: Error) => {
      watcher.close();
      clearInterval(fallback);
      clearTimeout(deadline);
      if (error) reject(error);
      else resolve();
    };
    const check = () => {
      if (existsSync(target)) finish();
    };
    const watcher = watch(folder, check);
    // Change events can be coalesced or dropped: a slow poll makes sure the round still ends.
    const fallback = setInterval(check, 20);
    const deadline = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${name} on disk`)), timeoutMs);
    check();
  });
}
