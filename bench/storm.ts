import { Redis } from 'ioredis';
import { accountKeys } from '../src/redis/keys.js';
import { BullmqBaseline, type BaselineWork } from './storm-bullmq.js';
import { cpuMsPer, cpuNow, nowUs, pool, postWebhook, recordPhase, redisCpuUs, round, startStack, waitUntil, type BenchOptions, type FigureResult, type Stack } from './lib.js';

/** Commands the redis-server has processed so far (`INFO stats` total_commands_processed). */
export async function commandsProcessed(redis: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1] ?? NaN);
}

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

/**
 * Figure 6: the storm. N linked, idle accounts each get one changed file, then every one is
 * notified at once (Dropbox batches accounts into one notification: here 500 per webhook, all
 * posted together); timed until every account is idle again. The baseline is BullMQ
 * (`storm-bullmq.ts`) doing the same work: jobs that run the engine's own sync steps, on other
 * accounts of the same emulator, a Worker whose concurrency is the engine's `maxActiveRuns`, the
 * same download limits. A second BullMQ run whose jobs are the bare script (no file index, no
 * entries) is reported beside it.
 */
export async function storm(options: BenchOptions): Promise<FigureResult> {
  const count = options.quick ? 50 : Number(process.env.BENCH_STORM_ACCOUNTS ?? 10_000);
  const maxActiveRuns = 64; // the engine's default (EngineOptions.maxActiveRuns); the Worker's concurrency
  const downloadsPerAccount = 4;
  const downloadConcurrency = 16;
  const stack = await startStack({ engine: { downloadConcurrency, downloadsPerAccount, idleTimeoutMs: 1_000, maxActiveRuns } });
  const counter = countSentCommands();
  try {
    // The engine.
    let started = performance.now();
    const accounts = await linkMany(stack, 'dbid:storm', count);
    const linkSeconds = (performance.now() - started) / 1000;
    options.log(`  engine: linked and synced ${count} accounts in ${linkSeconds.toFixed(1)} s`);
    for (const id of accounts) stack.emulator.model.writeFile(id, '/changed.txt', `a change for ${id}`);
    stack.emulator.stats.resetStats();
    const batches = inBatches(accounts, 500);
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
    let phase = nowUs();
    started = performance.now();
    const statuses = await Promise.all(batches.map((batch) => postWebhook(stack.url, batch)));
    if (statuses.some((s) => s !== 200)) throw new Error(`webhooks answered ${statuses.join(',')}`);
    const acceptedMs = performance.now() - started;
    await waitUntil(() => reachedIdle.size >= count, 30 * 60_000, 'every account to reach idle', 20);
    let polls = 0;
    await waitUntil(async () => (polls++, (await allIdle(stack.redis, accounts)) === 0), 30 * 60_000, 'every account to be idle', 20);
    const seconds = (performance.now() - started) / 1000;
    recordPhase('engine', phase);
    // Includes the 1 s idle timeout's passivations that happened within the window, and the polls.
    // Minus the benchmark's own polls (one HMGET per account per poll) and the INFO itself.
    const engineSent = counter.sent() - sentBefore - polls * count;
    const engineCommands = (await commandsProcessed(stack.redis)) - commandsBefore - polls * count - 1;
    const engineCpu = cpuMsPer(cpuBefore, await cpuNow(() => redisCpuUs(stack.redis)), count);
    stack.engine.events.off('state', onState);
    const downloads = accounts.reduce((n, id) => n + stack.emulator.stats.downloads(id), 0);
    if (downloads < count) throw new Error(`only ${downloads} of ${count} changed files were downloaded`);
    options.log(`  engine storm: ${count} accounts idle again after ${seconds.toFixed(2)} s (webhooks answered in ${acceptedMs.toFixed(0)} ms)`);

    // The BullMQ baselines, same emulator, other accounts: the same work first, then a bare script.
    const bull = await stormWithBullmq('engine-steps', 'dbid:bullsteps');
    const bare = await stormWithBullmq('bare', 'dbid:bull');
    const bullSeconds = bull.seconds;

    const ratio = seconds / bullSeconds;
    return {
      id: '6',
      name: 'storm: N accounts × 1 changed file, notified at once → all idle',
      measured: round(seconds, 2),
      unit: 's',
      baseline: round(bullSeconds, 2),
      baselineLabel: `BullMQ: dedup keepLastIfActive, Worker concurrency ${maxActiveRuns}, jobs running the engine's sync steps`,
      ratio: round(ratio, 3),
      target: '< 1 (faster than BullMQ)',
      met: ratio < 1,
      scale: count === 10_000 ? undefined : `${count.toLocaleString('en-US')} accounts, not 10,000`,
      details: {
        accounts: count,
        maxActiveRuns,
        accountsPerSecond: round(count / seconds, 0),
        bullmqAccountsPerSecond: round(count / bullSeconds, 0),
        bullmqBareScriptSeconds: round(bare.seconds, 2),
        ratioToBullmqBareScript: round(seconds / bare.seconds, 3),
        webhooks: batches.length,
        allWebhooksAnsweredMs: round(acceptedMs, 1),
        bullmqAllWebhooksAnsweredMs: round(bull.acceptedMs, 1),
        // Sent by the clients (script calls count once); the benchmark's own idle polls taken out.
        redisCommandsSentPerAccount: round(engineSent / count, 1),
        bullmqRedisCommandsSentPerAccount: round(bull.sent / count, 1),
        bullmqBareScriptRedisCommandsSentPerAccount: round(bare.sent / count, 1),
        // Executed by the server (INFO total_commands_processed: commands inside scripts count too).
        redisCommandsExecutedPerAccount: round(engineCommands / count, 1),
        bullmqRedisCommandsExecutedPerAccount: round(bull.commands / count, 1),
        bullmqBareScriptRedisCommandsExecutedPerAccount: round(bare.commands / count, 1),
        // Steadier than the times on a shared machine: what each side's work cost, whatever waited.
        cpuMsPerAccount: engineCpu,
        bullmqCpuMsPerAccount: bull.cpu,
        bullmqBareScriptCpuMsPerAccount: bare.cpu,
        idlePolls: polls,
        downloads,
        linkAndFirstSyncSeconds: round(linkSeconds, 1),
        bullmqFirstSyncSeconds: round(bull.linkSeconds, 1),
        bullmqBareScriptFirstSyncSeconds: round(bare.linkSeconds, 1),
      },
    };
  } finally {
    counter.restore();
    await stack.close();
  }

  /** The storm again through BullMQ, on accounts of its own that were synced once through it. */
  async function stormWithBullmq(work: BaselineWork, prefix: string) {
    const baseline = await BullmqBaseline.start({ emulator: stack.emulator, concurrency: maxActiveRuns, downloadsPerAccount, downloadConcurrency, pageLimit: 500, work });
    try {
      const accounts = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
      for (const id of accounts) {
        stack.emulator.model.addAccount(id, { accessToken: `token-${id}` });
        stack.emulator.model.writeFile(id, '/first.txt', `first file of ${id}`);
      }
      let started = performance.now();
      await baseline.link(accounts);
      const linkSeconds = (performance.now() - started) / 1000;
      options.log(`  BullMQ (${work}): first syncs of ${count} accounts in ${linkSeconds.toFixed(1)} s`);
      for (const id of accounts) stack.emulator.model.writeFile(id, '/changed.txt', `a change for ${id}`);
      stack.emulator.stats.resetStats();
      const cpuBefore = await cpuNow(() => baseline.redisCpuUs());
      const commandsBefore = await baseline.commandsProcessed();
      const sentBefore = counter.sent();
      const phase = nowUs();
      started = performance.now();
      const statuses = await baseline.notify(inBatches(accounts, 500));
      if (statuses.some((s) => s !== 200)) throw new Error(`BullMQ webhooks answered ${statuses.join(',')}`);
      const acceptedMs = performance.now() - started;
      await baseline.drained(count, `the BullMQ (${work}) storm to drain`);
      const seconds = (performance.now() - started) / 1000;
      recordPhase(`bullmq ${work}`, phase);
      const sent = counter.sent() - sentBefore;
      const commands = (await baseline.commandsProcessed()) - commandsBefore;
      const cpu = cpuMsPer(cpuBefore, await cpuNow(() => baseline.redisCpuUs()), count);
      const downloaded = accounts.reduce((n, id) => n + stack.emulator.stats.downloads(id), 0);
      if (downloaded < count) throw new Error(`BullMQ (${work}): only ${downloaded} of ${count} changed files were downloaded`);
      options.log(`  BullMQ (${work}) storm: ${count} accounts done after ${seconds.toFixed(2)} s (webhooks answered in ${acceptedMs.toFixed(0)} ms)`);
      return { seconds, acceptedMs, sent, commands, linkSeconds, cpu };
    } finally {
      await baseline.close();
    }
  }
}

function inBatches<T>(items: readonly T[], size: number): T[][] {
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
  return batches;
}
