/**
 * Summarises a `node --cpu-prof` profile of a benchmark run (see docs/benchmarks.md, "Profiles"):
 *   npx tsx bench/profile-summary.ts PROFILE.cpuprofile [PHASES.jsonl] [--top 25] [--callers writeUtf8String]
 * Self and total time per function (name + file + line), and per place (a file under src/, a package
 * under node_modules/, node internals, GC, idle). With a phases file (`BENCH_PHASES`, written by
 * `recordPhase` in lib.ts) it reports each side (engine, bare) separately, from the samples taken
 * inside that side's timed windows only. Profiles are never committed: write them to a temp dir.
 */
import { readFileSync } from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }
interface Phase { side: string; start: number; end: number }

const shortUrl = (url: string): string => {
  const i = url.lastIndexOf('/node_modules/');
  if (i >= 0) return url.slice(i + '/node_modules/'.length);
  const j = url.indexOf('/work/main/');
  if (j >= 0) return url.slice(j + '/work/main/'.length);
  return url.replace(/^file:\/\//, '');
};

/** Where a function lives: src/<dir>, machines, bench, a package, node internals, or V8's own buckets. */
export function place(frame: CallFrame): string {
  const url = frame.url;
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return nm[1]!;
  const src = /\/work\/main\/(src\/[^/]+|machines|bench)\//.exec(url);
  if (src) return src[1]!;
  if (url.startsWith('node:')) return 'node:' + (/^node:(?:internal\/)?([^/]+)/.exec(url)?.[1] ?? url);
  return shortUrl(url);
}

export function summarise(profile: Profile, windows?: readonly Phase[], callersOf?: string) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const places = new Map<string, number>();
  /** For samples whose leaf is `callersOf`: the nearest caller in src/ (outside src/redis) or machines/ , outside src/redis (who asked for it). */
  const callers = new Map<string, number>();
  let all = 0;
  let busy = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    const weight = (profile.timeDeltas[i + 1] ?? 0) / 1000; // ms until the next sample
    if (windows && !windows.some((w) => t >= w.start && t <= w.end)) continue;
    const leaf = byId.get(profile.samples[i]!)!;
    all += weight;
    if (leaf.callFrame.functionName === '(idle)') continue;
    busy += weight;
    const key = (f: CallFrame) => `${f.functionName || '(anonymous)'}  ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    self.set(key(leaf.callFrame), (self.get(key(leaf.callFrame)) ?? 0) + weight);
    places.set(place(leaf.callFrame), (places.get(place(leaf.callFrame)) ?? 0) + weight);
    if (callersOf && leaf.callFrame.functionName === callersOf) {
      let id: number | undefined = leaf.id;
      while (id !== undefined && !/\/work\/main\/(src\/(?!redis\/)|machines\/)/.test(byId.get(id)!.callFrame.url)) id = parent.get(id);
      const k = id === undefined ? '(no src caller)' : key(byId.get(id)!.callFrame);
      callers.set(k, (callers.get(k) ?? 0) + weight);
    }
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const k = key(byId.get(id)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + weight);
    }
  }
  return { all, busy, self, total, places, callers };
}

const top = (m: Map<string, number>, n: number, of: number) =>
  [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${v.toFixed(0).padStart(8)} ms ${((100 * v) / of).toFixed(1).padStart(5)}%  ${k}`).join('\n');

if (process.argv[1]?.endsWith('profile-summary.ts')) {
  const args = process.argv.slice(2);
  const topArg = args.indexOf('--top');
  const n = topArg >= 0 ? Number(args.splice(topArg, 2)[1]) : 25;
  const callersArg = args.indexOf('--callers');
  const callersOf = callersArg >= 0 ? args.splice(callersArg, 2)[1] : undefined;
  const [profileFile, phasesFile] = args;
  if (!profileFile) throw new Error('usage: profile-summary.ts PROFILE.cpuprofile [PHASES.jsonl] [--top N]');
  const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as Profile;
  const phases = phasesFile ? readFileSync(phasesFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Phase) : [];
  const sides = phasesFile ? [...new Set(phases.map((p) => p.side))] : ['whole run'];
  for (const side of sides) {
    const windows = phasesFile ? phases.filter((p) => p.side === side) : undefined;
    const s = summarise(profile, windows, callersOf);
    const wall = windows ? windows.reduce((a, w) => a + (w.end - w.start) / 1000, 0) : (profile.endTime - profile.startTime) / 1000;
    process.stdout.write(`\n=== ${side}: ${windows?.length ?? 1} window(s), ${wall.toFixed(0)} ms wall, ${s.busy.toFixed(0)} ms on CPU in this thread (${((100 * s.busy) / wall).toFixed(0)}%), idle ${(s.all - s.busy).toFixed(0)} ms\n`);
    process.stdout.write(`--- by place (self time, % of on-CPU)\n${top(s.places, n, s.busy)}\n`);
    process.stdout.write(`--- top self time\n${top(s.self, n, s.busy)}\n`);
    process.stdout.write(`--- top total time (inclusive)\n${top(s.total, n, s.busy)}\n`);
    if (callersOf) process.stdout.write(`--- ${callersOf}: nearest caller in src/ (outside src/redis) or machines/\n${top(s.callers, n, s.busy)}\n`);
  }
}
