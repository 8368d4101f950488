import { Redis } from 'ioredis';
import { accountKeys } from '../src/redis/keys.js';
import { BullmqBaseline, type BaselineWork } from './storm-bullmq.js';
import { commandsProcessed, cpuMsPer, cpuNow, median, nowUs, pool, postWebhook, recordPhase, redisCpuUs, round, startStack, waitUntil, type BenchOptions, type FigureResult, type Stack } from './lib.js';

/**
 * Counts the commands every ioredis client of this process sends (the engine's and BullMQ's alike:
 * both use the one ioredis module), so each side's client round trips can be compared. A script
 * call counts once, a pipeline's commands one each.
 */
function countSentCommands(): { sent: () => number; restore: () => void } {
  let sent = 0;
  const original = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (this: Redis, ...args: Parameters<Redis['sendCommand']>) {
    sent++;
    return original.apply(this, args);
  } as Redis['sendCommand'];
  return { sent: () => sent, restore: () => void (Redis.prototype.sendCommand = original) };
}

/** True when every account's mailbox is idle and clean (one pipelined read for all of them). */
export async function allIdle(redis: Redis, accounts: readonly string[]): Promise<number> {
  let busy = 0;
  for (let i = 0; i < accounts.length; i += 5_000) {
    const pipeline = redis.pipeline();
    for (const id of accounts.slice(i, i + 5_000)) pipeline.hmget(accountKeys(id).mailbox, 'status', 'dirty');
    for (const [, value] of (await pipeline.exec()) ?? []) {
      const [status, dirty] = value as [string | null, string | null];
      if (status !== 'idle' || dirty === '1') busy++;
    }
  }
  return busy;
}

/** Links `count` accounts with one file each through the engine and waits for their first syncs. */
export async function linkMany(stack: Stack, prefix: string, count: number): Promise<string[]> {
  const accounts = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  for (const id of accounts) {
    stack.emulator.model.addAccount(id, { accessToken: `token-${id}` });
    stack.emulator.model.writeFile(id, '/first.txt', `first file of ${id}`);
  }
  await pool(accounts, 64, (id) => stack.engine.link(id, { accessToken: `token-${id}` }));
  await waitUntil(async () => (await allIdle(stack.redis, accounts)) === 0, 30 * 60_000, 'the first syncs', 200);
  return accounts;
}

/** How many accounts one notification names (Dropbox batches them). */
const ACCOUNTS_PER_WEBHOOK = 500;

/** One side's storm: its time, and what it cost per account. */
interface StormRound {
  seconds: number;
  acceptedMs: number;
  /** Commands its clients sent, per account (script calls count once). */
  sentPerAccount: number;
  /** Commands its redis-server executed, per account (commands inside scripts count too). */
  executedPerAccount: number;
  cpu: ReturnType<typeof cpuMsPer>;
}

/** A side of the figure: links its accounts once, then storms them once per round. */
interface StormSide {
  name: string;
  link(): Promise<number>;
  storm(round: number): Promise<StormRound>;
  close(): Promise<void>;
}

/**
 * Figure 6: the storm. N linked, idle accounts each get one changed file, then every one is
 * notified at once (Dropbox batches accounts into one notification: here 500 per webhook, all
 * posted together); timed until every account is idle again. The baseline is BullMQ
 * (`storm-bullmq.ts`) doing the same work: jobs that run the engine's own sync steps, on other
 * accounts of the same emulator, a Worker whose concurrency is the engine's `maxActiveRuns`, the
 * same download limits. A second BullMQ run whose jobs are the bare script (no file index, no
 * entries) is reported beside it. Every side is linked first; then each round storms every side
 * once, in an order that rotates, and the ratio is the median of the rounds' ratios: the machine's
 * speed drifts over minutes, and a side measured only once, always in the same place, takes
 * whatever phase it lands in.
 */
export async function storm(options: BenchOptions): Promise<FigureResult> {
  const count = options.quick ? 50 : Number(process.env.BENCH_STORM_ACCOUNTS ?? 10_000);
  const rounds = options.quick ? 2 : Number(process.env.BENCH_STORM_ROUNDS ?? 3);
  const maxActiveRuns = 64; // the engine's default (EngineOptions.maxActiveRuns); the Worker's concurrency
  const downloadsPerAccount = 4;
  const downloadConcurrency = 16;
  const stack = await startStack({ engine: { downloadConcurrency, downloadsPerAccount, idleTimeoutMs: 1_000, maxActiveRuns } });
  const counter = countSentCommands();
  const batchesOf = (accounts: readonly string[]) => inBatches(accounts, ACCOUNTS_PER_WEBHOOK);
  const sides: StormSide[] = [];
  try {
    const engine = engineSide();
    sides.push(engine, bullmqSide('engine-steps', 'dbid:bullsteps'), bullmqSide('bare', 'dbid:bull'));
    const linkSeconds: Record<string, number> = {};
    for (const side of sides) {
      linkSeconds[side.name] = await side.link();
      options.log(`  ${side.name}: linked and synced ${count} accounts in ${linkSeconds[side.name]!.toFixed(1)} s`);
    }
    const results: Record<string, StormRound[]> = Object.fromEntries(sides.map((side) => [side.name, []]));
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < sides.length; i++) {
        const side = sides[(r + i) % sides.length]!;
        const result = await side.storm(r);
        results[side.name]!.push(result);
        options.log(`  round ${r + 1}, ${side.name}: ${count} accounts done after ${result.seconds.toFixed(2)} s (webhooks answered in ${result.acceptedMs.toFixed(0)} ms)`);
      }
    }
    const [ours, bull, bare] = sides.map((side) => results[side.name]!);
    const seconds = median(ours!.map((x) => x.seconds));
    const bullSeconds = median(bull!.map((x) => x.seconds));
    const ratios = ours!.map((x, r) => x.seconds / bull![r]!.seconds);
    const ratio = median(ratios);
    const medianOf = (xs: readonly StormRound[], pick: (x: StormRound) => number | null) => round(median(xs.map(pick).filter((v): v is number => v !== null)), 3);
    const cpuOf = (xs: readonly StormRound[]) => ({
      main: medianOf(xs, (x) => x.cpu.main),
      otherThreads: medianOf(xs, (x) => x.cpu.otherThreads),
      redisServer: medianOf(xs, (x) => x.cpu.redisServer),
    });
    return {
      id: '6',
      name: 'storm: N accounts × 1 changed file, notified at once → all idle',
      measured: round(seconds, 2),
      unit: 's',
      baseline: round(bullSeconds, 2),
      baselineLabel: `BullMQ: dedup keepLastIfActive, Worker concurrency ${maxActiveRuns}, jobs running the engine's sync steps`,
      ratio: round(ratio, 3),
      ratioLabel: 'median of per-round ratios',
      target: '< 1 (faster than BullMQ)',
      met: ratio < 1,
      scale: count === 10_000 ? undefined : `${count.toLocaleString('en-US')} accounts, not 10,000`,
      details: {
        accounts: count,
        rounds,
        maxActiveRuns,
        secondsPerRound: ours!.map((x) => round(x.seconds, 2)),
        bullmqSecondsPerRound: bull!.map((x) => round(x.seconds, 2)),
        bullmqBareScriptSecondsPerRound: bare!.map((x) => round(x.seconds, 2)),
        ratioPerRound: ratios.map((x) => round(x, 3)),
        accountsPerSecond: round(count / seconds, 0),
        bullmqAccountsPerSecond: round(count / bullSeconds, 0),
        bullmqBareScriptSeconds: round(median(bare!.map((x) => x.seconds)), 2),
        ratioToBullmqBareScript: round(median(ours!.map((x, r) => x.seconds / bare![r]!.seconds)), 3),
        webhooks: Math.ceil(count / ACCOUNTS_PER_WEBHOOK),
        allWebhooksAnsweredMs: medianOf(ours!, (x) => x.acceptedMs),
        bullmqAllWebhooksAnsweredMs: medianOf(bull!, (x) => x.acceptedMs),
        // Sent by the clients (script calls count once); the benchmark's own idle polls taken out.
        redisCommandsSentPerAccount: medianOf(ours!, (x) => x.sentPerAccount),
        bullmqRedisCommandsSentPerAccount: medianOf(bull!, (x) => x.sentPerAccount),
        bullmqBareScriptRedisCommandsSentPerAccount: medianOf(bare!, (x) => x.sentPerAccount),
        // Executed by the server (INFO total_commands_processed: commands inside scripts count too).
        redisCommandsExecutedPerAccount: medianOf(ours!, (x) => x.executedPerAccount),
        bullmqRedisCommandsExecutedPerAccount: medianOf(bull!, (x) => x.executedPerAccount),
        bullmqBareScriptRedisCommandsExecutedPerAccount: medianOf(bare!, (x) => x.executedPerAccount),
        // Steadier than the times on a shared machine: what each side's work cost, whatever waited
        // (medians over the rounds).
        cpuMsPerAccount: cpuOf(ours!),
        bullmqCpuMsPerAccount: cpuOf(bull!),
        bullmqBareScriptCpuMsPerAccount: cpuOf(bare!),
        linkAndFirstSyncSeconds: round(linkSeconds[engine.name], 1),
        bullmqFirstSyncSeconds: round(linkSeconds[sides[1]!.name], 1),
        bullmqBareScriptFirstSyncSeconds: round(linkSeconds[sides[2]!.name], 1),
      },
    };
  } finally {
    for (const side of sides) await side.close();
    counter.restore();
    await stack.close();
  }

  /** What every side checks after its storm: each account's changed file was downloaded. */
  function checkDownloads(name: string, accounts: readonly string[]): void {
    const downloads = accounts.reduce((n, id) => n + stack.emulator.stats.downloads(id), 0);
    if (downloads < accounts.length) throw new Error(`${name}: only ${downloads} of ${accounts.length} changed files were downloaded`);
  }

  /** Gives every account one changed file for this round. */
  function changeOneFileEach(accounts: readonly string[], round: number): void {
    for (const id of accounts) stack.emulator.model.writeFile(id, `/changed-${round}.txt`, `change ${round} for ${id}`);
    stack.emulator.stats.resetStats();
  }

  function engineSide(): StormSide {
    let accounts: string[] = [];
    return {
      name: 'engine',
      async link() {
        const started = performance.now();
        accounts = await linkMany(stack, 'dbid:storm', count);
        return (performance.now() - started) / 1000;
      },
      async storm(round) {
        changeOneFileEach(accounts, round);
        // Runs that reached idle, counted in process (cheap), so the pipelined read of every mailbox
        // (expensive at 10,000) only polls once every account has been idle at least once.
        const reachedIdle = new Set<string>();
        const onState = ({ accountId, to }: { accountId: string; to: string }) => {
          if (to === 'idle') reachedIdle.add(accountId);
        };
        stack.engine.events.on('state', onState);
        // Read first and last, so that its own INFO commands fall outside the counts of commands.
        const cpuBefore = await cpuNow(() => redisCpuUs(stack.redis));
        const commandsBefore = await commandsProcessed(stack.redis);
        const sentBefore = counter.sent();
        const phase = nowUs();
        const started = performance.now();
        const statuses = await Promise.all(batchesOf(accounts).map((batch) => postWebhook(stack.url, batch)));
        if (statuses.some((s) => s !== 200)) throw new Error(`webhooks answered ${statuses.join(',')}`);
        const acceptedMs = performance.now() - started;
        await waitUntil(() => reachedIdle.size >= count, 30 * 60_000, 'every account to reach idle', 20);
        let polls = 0;
        await waitUntil(async () => (polls++, (await allIdle(stack.redis, accounts)) === 0), 30 * 60_000, 'every account to be idle', 20);
        const seconds = (performance.now() - started) / 1000;
        recordPhase('engine', phase);
        // Includes the 1 s idle timeout's passivations that happened within the window, and the polls.
        // Minus the benchmark's own polls (one HMGET per account per poll) and the INFO itself.
        const sent = counter.sent() - sentBefore - polls * count;
        const executed = (await commandsProcessed(stack.redis)) - commandsBefore - polls * count - 1;
        const cpu = cpuMsPer(cpuBefore, await cpuNow(() => redisCpuUs(stack.redis)), count);
        stack.engine.events.off('state', onState);
        checkDownloads('engine', accounts);
        // Every actor passivated before the next side runs: the next round starts from the same state.
        await waitUntil(() => stack.engine.host.size === 0, 60_000, 'every actor to be passivated', 20);
        return { seconds, acceptedMs, sentPerAccount: sent / count, executedPerAccount: executed / count, cpu };
      },
      async close() {},
    };
  }

  /** The storm through BullMQ, on accounts of its own that were synced once through it. */
  function bullmqSide(work: BaselineWork, prefix: string): StormSide {
    let baseline: BullmqBaseline | undefined;
    const accounts = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
    return {
      name: `BullMQ (${work})`,
      async link() {
        baseline = await BullmqBaseline.start({ emulator: stack.emulator, concurrency: maxActiveRuns, downloadsPerAccount, downloadConcurrency, pageLimit: 500, work });
        for (const id of accounts) {
          stack.emulator.model.addAccount(id, { accessToken: `token-${id}` });
          stack.emulator.model.writeFile(id, '/first.txt', `first file of ${id}`);
        }
        const started = performance.now();
        await baseline.link(accounts);
        return (performance.now() - started) / 1000;
      },
      async storm(round) {
        const b = baseline!;
        changeOneFileEach(accounts, round);
        const cpuBefore = await cpuNow(() => b.redisCpuUs());
        const commandsBefore = await b.commandsProcessed();
        const sentBefore = counter.sent();
        const phase = nowUs();
        const started = performance.now();
        const statuses = await b.notify(batchesOf(accounts));
        if (statuses.some((s) => s !== 200)) throw new Error(`BullMQ webhooks answered ${statuses.join(',')}`);
        const acceptedMs = performance.now() - started;
        await b.drained(count, `the BullMQ (${work}) storm to drain`);
        const seconds = (performance.now() - started) / 1000;
        recordPhase(`bullmq ${work}`, phase);
        const sent = counter.sent() - sentBefore;
        const executed = (await b.commandsProcessed()) - commandsBefore;
        const cpu = cpuMsPer(cpuBefore, await cpuNow(() => b.redisCpuUs()), count);
        checkDownloads(`BullMQ (${work})`, accounts);
        return { seconds, acceptedMs, sentPerAccount: sent / count, executedPerAccount: executed / count, cpu };
      },
      async close() {
        await baseline?.close();
      },
    };
  }
}

function inBatches<T>(items: readonly T[], size: number): T[][] {
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
  return batches;
}
