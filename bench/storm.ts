import type { Redis } from 'ioredis';
import { accountKeys } from '../src/redis/keys.js';
import { pool, postWebhook, round, startStack, waitUntil, type BenchOptions, type FigureResult, type Stack } from './lib.js';

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
 * posted together); timed until every account is idle again.
 */
export async function storm(options: BenchOptions): Promise<FigureResult> {
  const count = options.quick ? 50 : Number(process.env.BENCH_STORM_ACCOUNTS ?? 10_000);
  const stack = await startStack({ engine: { downloadConcurrency: 16, downloadsPerAccount: 4, idleTimeoutMs: 1_000 } });
  try {
    let started = performance.now();
    const accounts = await linkMany(stack, 'dbid:storm', count);
    const linkSeconds = (performance.now() - started) / 1000;
    options.log(`  linked and synced ${count} accounts in ${linkSeconds.toFixed(1)} s`);
    for (const id of accounts) stack.emulator.model.writeFile(id, '/changed.txt', `a change for ${id}`);
    stack.emulator.stats.resetStats();
    started = performance.now();
    const batches: string[][] = [];
    for (let i = 0; i < accounts.length; i += 500) batches.push(accounts.slice(i, i + 500));
    const statuses = await Promise.all(batches.map((batch) => postWebhook(stack.url, batch)));
    if (statuses.some((s) => s !== 200)) throw new Error(`webhooks answered ${statuses.join(',')}`);
    const acceptedMs = performance.now() - started;
    await waitUntil(async () => (await allIdle(stack.redis, accounts)) === 0, 30 * 60_000, 'every account to be idle', 20);
    const seconds = (performance.now() - started) / 1000;
    const downloads = accounts.reduce((n, id) => n + stack.emulator.stats.downloads(id), 0);
    if (downloads < count) throw new Error(`only ${downloads} of ${count} changed files were downloaded`);
    options.log(`  storm: ${count} accounts idle again after ${seconds.toFixed(2)} s`);
    return {
      id: '6',
      name: 'storm: N accounts × 1 changed file, notified at once → all idle',
      measured: round(seconds, 2),
      unit: 's',
      baseline: null,
      baselineLabel: 'not measured: needs bullmq (not installed)',
      ratio: null,
      target: 'vs BullMQ (no numeric target)',
      met: null,
      scale: count === 10_000 ? undefined : `${count.toLocaleString('en-US')} accounts, not 10,000`,
      details: {
        accounts: count,
        accountsPerSecond: round(count / seconds, 0),
        webhooks: batches.length,
        allWebhooksAnsweredMs: round(acceptedMs, 1),
        downloads,
        linkAndFirstSyncSeconds: round(linkSeconds, 1),
      },
    };
  } finally {
    await stack.close();
  }
}
