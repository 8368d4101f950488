import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BareSync } from './bare-sync.js';
import { startEmulatorProcess } from './emulator-process.js';
import { APP_KEY, APP_SECRET, isIdle, median, nowUs, recordPhase, round, startStackOn, waitUntil, type BenchOptions, type FigureResult } from './lib.js';

/**
 * Figure 4: initial sync of N files, 20 ms emulator latency per download, concurrency 8, in files/s;
 * against the bare script (same SDK, same page size, same concurrency) and against the ideal
 * concurrency ÷ latency. Rounds alternate engine and bare script, each on a fresh account.
 * The emulator runs in its own process for both sides: on their event loop, serving 400
 * downloads/s took enough CPU that even the bare script could not be judged against the ideal.
 */
export async function initialSync(options: BenchOptions): Promise<FigureResult> {
  const files = options.quick ? 200 : Number(process.env.BENCH_SYNC_FILES ?? 10_000);
  const rounds = options.quick ? 1 : 3;
  const latencyMs = 20;
  const concurrency = 8;
  const pageLimit = 500;
  const ideal = concurrency / (latencyMs / 1000);
  const emulator = await startEmulatorProcess({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit });
  const stack = await startStackOn(emulator.url, { engine: { downloadConcurrency: concurrency, downloadsPerAccount: concurrency, pageLimit, idleTimeoutMs: 600_000 } }).catch(async (error: unknown) => {
    await emulator.close();
    throw error;
  });
  const bareDir = mkdtempSync(join(tmpdir(), 'mailroom-bench-bare-'));
  // `floor`: the listing and the downloads alone, the bytes thrown away (BareSync.fetchOnly): what
  // the SDK and the emulator allow of the ideal before any work on a file.
  type Side = 'engine' | 'bare' | 'floor';
  const rates: Record<Side, number[]> = { engine: [], bare: [], floor: [] };
  // The most downloads of one account the emulator served at once: every side should reach `concurrency`.
  const inFlight: Record<Side, number[]> = { engine: [], bare: [], floor: [] };
  // CPU per file of this process (the side being measured) and of the emulator serving it.
  const cpuPerFile: Record<Side, { bench: number[]; emulator: number[] }> = { engine: { bench: [], emulator: [] }, bare: { bench: [], emulator: [] }, floor: { bench: [], emulator: [] } };
  /** Seeds a fresh account, then times `sync` on it (the seeding and the bookkeeping stay outside the window). */
  const timeSide = async (side: Side, account: string, sync: (account: string, accessToken: string) => Promise<void>) => {
    const accessToken = `token-${account}`;
    await emulator.addAccount(account, accessToken);
    await emulator.seedFiles(account, files);
    const emulatorCpuBefore = await emulator.cpuMs();
    const benchCpuBefore = process.cpuUsage();
    const phase = nowUs();
    const started = performance.now();
    await sync(account, accessToken);
    rates[side].push(files / ((performance.now() - started) / 1000));
    recordPhase(side, phase);
    const benchCpu = process.cpuUsage(benchCpuBefore);
    cpuPerFile[side].bench.push((benchCpu.user + benchCpu.system) / 1000 / files);
    cpuPerFile[side].emulator.push(((await emulator.cpuMs()) - emulatorCpuBefore) / files);
    inFlight[side].push((await emulator.stats(account)).maxDownloadsInFlight);
  };
  try {
    await emulator.setLatency(latencyMs, 'files/download');
    for (let r = 0; r < rounds; r++) {
      const runEngine = () =>
        timeSide('engine', `dbid:sync-${r}`, async (account, accessToken) => {
          await stack.engine.link(account, { accessToken });
          await waitUntil(() => isIdle(stack, account), 600_000, 'the initial sync', 20);
        });
      const runBare = () =>
        timeSide('bare', `dbid:bare-${r}`, async (_account, accessToken) => {
          const bare = new BareSync(emulator.url, accessToken, join(bareDir, String(r)), pageLimit);
          const fetched = await bare.sync(concurrency);
          if (fetched !== files) throw new Error(`bare script fetched ${fetched} of ${files}`);
        });
      const runFloor = () =>
        timeSide('floor', `dbid:floor-${r}`, async (_account, accessToken) => {
          const bare = new BareSync(emulator.url, accessToken, join(bareDir, `floor-${r}`), pageLimit);
          const entries = await bare.list();
          if (entries.length !== files) throw new Error(`download-only floor listed ${entries.length} of ${files}`);
          await bare.fetchOnly(entries, concurrency);
        });
      // Each side goes first in turn: whatever a round leaves behind (garbage, dirty pages still
      // being written back) then weighs on every side alike.
      const order = [runEngine, runBare, runFloor];
      for (let i = 0; i < order.length; i++) await order[(r + i) % order.length]!();
      options.log(`  round ${r + 1}: engine ${rates.engine[r]!.toFixed(0)} files/s, bare script ${rates.bare[r]!.toFixed(0)} files/s, downloads alone ${rates.floor[r]!.toFixed(0)} files/s (ideal ${ideal})`);
    }
    const rate = median(rates.engine);
    const ratio = median(rates.engine.map((e, i) => e / rates.bare[i]!));
    return {
      id: '4',
      name: 'initial sync, 20 ms/download, concurrency 8',
      measured: round(rate, 0),
      unit: 'files/s',
      baseline: round(median(rates.bare), 0),
      baselineLabel: 'bare SDK script',
      ratio: round(ratio, 3),
      target: `≥ 0.9 × bare and ≥ 0.9 × ideal (${ideal} files/s)`,
      met: ratio >= 0.9 && rate / ideal >= 0.9,
      scale: files === 10_000 ? undefined : `${files} files`,
      details: {
        files, rounds, pageLimit, ideal,
        ratioToIdeal: round(rate / ideal, 3),
        bareRatioToIdeal: round(median(rates.bare) / ideal, 3),
        floorRatioToIdeal: round(median(rates.floor) / ideal, 3),
        // Median of the rounds' engine ÷ floor: how much of what the SDK and the emulator allow the engine reaches.
        ratioToFloor: round(median(rates.engine.map((e, i) => e / rates.floor[i]!)), 3),
        enginePerRound: rates.engine.map((x) => Math.round(x)),
        barePerRound: rates.bare.map((x) => Math.round(x)),
        floorPerRound: rates.floor.map((x) => Math.round(x)),
        maxDownloadsInFlight: inFlight,
        // Medians over the rounds, in ms of CPU per file (all threads): `bench` is this process (the
        // engine or the bare script, plus the harness), `emulator` what serving that side cost it.
        cpuMsPerFile: {
          engine: { bench: round(median(cpuPerFile.engine.bench), 3), emulator: round(median(cpuPerFile.engine.emulator), 3) },
          bare: { bench: round(median(cpuPerFile.bare.bench), 3), emulator: round(median(cpuPerFile.bare.emulator), 3) },
          floor: { bench: round(median(cpuPerFile.floor.bench), 3), emulator: round(median(cpuPerFile.floor.emulator), 3) },
        },
        emulator: 'own process (bench/emulator-process.ts), for every side',
        // Both sides share this process's libuv pool (the emulator no longer does), sized when the
        // process started: only the environment of the command sizes it (a module that sets
        // UV_THREADPOOL_SIZE runs too late).
        threadPool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
      },
    };
  } finally {
    await stack.close();
    await emulator.close();
    rmSync(bareDir, { recursive: true, force: true });
  }
}
