/**
 * `npm run bench` — every figure of docs/benchmarks.md, each measured side by side with its baseline
 * in the same run, each with its own redis-server and emulator.
 *   --quick        a tiny version of each figure (the CI smoke test: checks they run, not their numbers)
 *   --only 1,4     run some figures only
 *   --json FILE    also write the results as JSON
 */
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FIGURES, type FigureId } from './figures.js';
import { fmt, type FigureResult } from './lib.js';

export function machine(): Record<string, string> {
  let redis = 'unknown';
  try {
    redis = /v=([\d.]+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? redis;
  } catch {
    // reported as unknown
  }
  return {
    cores: String(cpus().length),
    cpu: cpus()[0]?.model ?? 'unknown',
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    redis,
  };
}

export function table(results: readonly FigureResult[]): string {
  const rows = [['#', 'figure', 'measured', 'baseline', 'ratio', 'target', 'met?']];
  for (const r of results) {
    rows.push([
      r.id,
      r.name + (r.scale ? ` (${r.scale})` : ''),
      r.measured === null ? 'not measured' : `${fmt(r.measured)} ${r.unit}`,
      r.baseline === null ? r.baselineLabel : `${fmt(r.baseline)} (${r.baselineLabel})`,
      fmt(r.ratio, 3),
      r.target,
      r.met === null ? '–' : r.met ? 'yes' : 'NO',
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')).join('\n');
}

export async function runBench(options: { quick: boolean; only?: FigureId[]; log?: (line: string) => void }): Promise<FigureResult[]> {
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const results: FigureResult[] = [];
  for (const [id, figure] of Object.entries(FIGURES) as [FigureId, (typeof FIGURES)[FigureId]][]) {
    if (options.only && !options.only.includes(id)) continue;
    log(`figure ${id}: ${figure.title}${options.quick ? ' (quick)' : ''}`);
    const started = Date.now();
    const result = await figure.run({ quick: options.quick, log });
    log(`  -> ${fmt(result.measured)} ${result.unit} vs ${fmt(result.baseline)} (ratio ${fmt(result.ratio, 3)}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    results.push(result);
  }
  return results;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const onlyArg = args.indexOf('--only');
  const only = onlyArg >= 0 ? (args[onlyArg + 1]!.split(',') as FigureId[]) : undefined;
  const jsonArg = args.indexOf('--json');
  const started = Date.now();
  const results = await runBench({ quick, only });
  process.stdout.write(`\n${table(results)}\n\n`);
  for (const r of results) process.stdout.write(`${r.id}. ${JSON.stringify(r.details)}\n`);
  const m = machine();
  process.stdout.write(`\nmachine: ${m.cores} cores (${m.cpu}), ${m.memory}, node ${m.node}, redis ${m.redis}; ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  if (jsonArg >= 0) writeFileSync(args[jsonArg + 1]!, JSON.stringify({ machine: m, quick, results }, null, 2));
  process.exit(0);
}
