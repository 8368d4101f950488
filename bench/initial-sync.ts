import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BareSync } from './bare-sync.js';
import { isIdle, linkAccount, median, nowUs, recordPhase, round, startStack, waitUntil, type BenchOptions, type FigureResult } from './lib.js';

/**
 * Figure 4: initial sync of N files, 20 ms emulator latency per download, concurrency 8, in files/s;
 * against the bare script (same SDK, same page size, same concurrency) and against the ideal
 * concurrency ÷ latency. Rounds alternate engine and bare script, each on a fresh account.
 */
export async function initialSync(options: BenchOptions): Promise<FigureResult> {
  const files = options.quick ? 200 : Number(process.env.BENCH_SYNC_FILES ?? 10_000);
  const rounds = options.quick ? 1 : 3;
  const latencyMs = 20;
  const concurrency = 8;
  const pageLimit = 500;
  const ideal = concurrency / (latencyMs / 1000);
  const stack = await startStack({ engine: { downloadConcurrency: concurrency, downloadsPerAccount: concurrency, pageLimit, idleTimeoutMs: 600_000 } });
  stack.emulator.faults.setLatency(latencyMs, 'files/download');
  const bareDir = mkdtempSync(join(tmpdir(), 'mailroom-bench-bare-'));
  const seed = (account: string) => {
    stack.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    for (let i = 0; i < files; i++) stack.emulator.model.writeFile(account, `/folder-${i % 100}/file-${i}.txt`, `file ${i} `.repeat(20));
  };
  const engineRates: number[] = [];
  const bareRates: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const runEngine = async () => {
        const account = `dbid:sync-${r}`;
        seed(account);
        const phase = nowUs();
        const started = performance.now();
        await linkAccount(stack, account);
        await waitUntil(() => isIdle(stack, account), 600_000, 'the initial sync', 20);
        engineRates.push(files / ((performance.now() - started) / 1000));
        recordPhase('engine', phase);
      };
      const runBare = async () => {
        const bareAccount = `dbid:bare-${r}`;
        seed(bareAccount);
        const bare = new BareSync(stack.emulator.url, `token-${bareAccount}`, join(bareDir, String(r)), pageLimit);
        const phase = nowUs();
        const started = performance.now();
        const fetched = await bare.sync(concurrency);
        if (fetched !== files) throw new Error(`bare script fetched ${fetched} of ${files}`);
        bareRates.push(files / ((performance.now() - started) / 1000));
        recordPhase('bare', phase);
      };
      // Each side goes first in every other round: whatever a round leaves behind (garbage, dirty
      // pages still being written back) then weighs on both sides alike.
      if (r % 2 === 0) {
        await runEngine();
        await runBare();
      } else {
        await runBare();
        await runEngine();
      }
      options.log(`  round ${r + 1}: engine ${engineRates[r]!.toFixed(0)} files/s, bare script ${bareRates[r]!.toFixed(0)} files/s (ideal ${ideal})`);
    }
    const rate = median(engineRates);
    const ratio = median(engineRates.map((e, i) => e / bareRates[i]!));
    return {
      id: '4',
      name: 'initial sync, 20 ms/download, concurrency 8',
      measured: round(rate, 0),
      unit: 'files/s',
      baseline: round(median(bareRates), 0),
      baselineLabel: 'bare SDK script',
      ratio: round(ratio, 3),
      target: `≥ 0.9 × bare and ≥ 0.9 × ideal (${ideal} files/s)`,
      met: ratio >= 0.9 && rate / ideal >= 0.9,
      scale: files === 10_000 ? undefined : `${files} files`,
      details: {
        files, rounds, pageLimit, ideal,
        ratioToIdeal: round(rate / ideal, 3),
        bareRatioToIdeal: round(median(bareRates) / ideal, 3),
        enginePerRound: engineRates.map((x) => Math.round(x)),
        barePerRound: bareRates.map((x) => Math.round(x)),
        // Both sides share this process's libuv pool, sized when the process started: only the
        // environment of the command sizes it (a module that sets UV_THREADPOOL_SIZE runs too late).
        threadPool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
      },
    };
  } finally {
    await stack.close();
    rmSync(bareDir, { recursive: true, force: true });
  }
}
