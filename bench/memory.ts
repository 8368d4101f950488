import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator } from '../src/dropbox-emulator/server.js';
import { openRedis } from '../src/redis/connection.js';
import { accountKeys } from '../src/redis/keys.js';
import { EngineProcess } from './engine-process.js';
import { APP_KEY, APP_SECRET, pool, postWebhook, round, sleep, startRedis, waitUntil, type BenchOptions, type FigureResult } from './lib.js';
import { allIdle } from './storm.js';

// The fence is a field of the mailbox, not a key of its own (keys.fence names the mailbox).
const CONTROL_KEYS = ['account', 'mailbox', 'lease', 'actor', 'listing', 'changes', 'queue'] as const;
const INDEX_KEYS = ['files', 'ignored', 'fileIds', 'entryIds', 'entries'] as const;

/**
 * Figure 7: memory with many linked idle accounts after a storm, in the real engine process (so
 * its RSS holds the engine alone; the emulator runs here). Idle actors are passivated (short
 * IDLE_TIMEOUT_MS), so an idle account should cost the process nothing and Redis only its state.
 * Baseline: the same process booted with no account.
 */
export async function memory(options: BenchOptions): Promise<FigureResult> {
  const count = options.quick ? 50 : Number(process.env.BENCH_MEMORY_ACCOUNTS ?? 20_000);
  const redisServer = await startRedis();
  const redis = await openRedis(redisServer.url);
  const emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit: 500 });
  const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-bench-mem-'));
  const engine = await EngineProcess.start({
    redisUrl: redisServer.url, dataDir, dropboxUrl: emulator.url,
    env: { LOG_LEVEL: 'warn', IDLE_TIMEOUT_MS: '500', LEASE_TTL_MS: '5000', DOWNLOAD_CONCURRENCY: '16', POLL_INTERVAL_MS: '0', SWEEP_INTERVAL_MS: '60000' },
  });
  try {
    await sleep(1_000);
    const rssEmpty = engine.rssBytes();
    const usedBefore = await usedMemory();
    const accounts = Array.from({ length: count }, (_, i) => `dbid:mem-${i}`);
    for (const id of accounts) {
      emulator.model.addAccount(id, { accessToken: `token-${id}` });
      emulator.model.writeFile(id, '/first.txt', `first file of ${id}`);
    }
    const started = performance.now();
    await pool(accounts, 32, async (id) => {
      const response = await engine.api(`/accounts/${id}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${id}` }) });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`link answered ${response.status}`);
    });
    await waitUntil(async () => (await allIdle(redis, accounts)) === 0, 60 * 60_000, 'the first syncs', 250);
    options.log(`  linked and synced ${count} accounts in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    // The storm: one changed file each, all notified at once.
    for (const id of accounts) emulator.model.writeFile(id, '/changed.txt', `a change for ${id}`);
    const batches: string[][] = [];
    for (let i = 0; i < accounts.length; i += 500) batches.push(accounts.slice(i, i + 500));
    await Promise.all(batches.map((batch) => postWebhook(engine.url, batch)));
    await waitUntil(async () => (await allIdle(redis, accounts)) === 0, 60 * 60_000, 'the storm to end', 250);
    // Every actor passivated: no lease left.
    await waitUntil(async () => {
      const pipeline = redis.pipeline();
      for (const id of accounts) pipeline.exists(accountKeys(id).lease);
      return ((await pipeline.exec()) ?? []).every(([, n]) => n === 0);
    }, 120_000, 'every idle actor to be passivated', 250);
    await sleep(2_000);
    const rssIdle = engine.rssBytes();
    const usedAfter = await usedMemory();

    // MEMORY USAGE of one account's keys, control state apart from the file index and entries.
    const sample = accounts[Math.floor(count / 2)]!;
    const keys = accountKeys(sample);
    const bytesOf = async (names: readonly (keyof typeof keys)[]) => {
      const out: Record<string, number> = {};
      for (const name of names) {
        const bytes = (await redis.call('MEMORY', 'USAGE', keys[name], 'SAMPLES', '0')) as number | null;
        if (bytes !== null) out[name] = bytes;
      }
      return out;
    };
    const control = await bytesOf(CONTROL_KEYS);
    const index = await bytesOf(INDEX_KEYS);
    const fieldLengths = async (key: string) => Object.fromEntries(Object.entries(await redis.hgetall(key)).map(([k, v]) => [k, v.length]));
    const actorFields = await fieldLengths(keys.actor);
    const listingFields = await fieldLengths(keys.listing);
    const controlBytes = Object.values(control).reduce((a, b) => a + b, 0);
    const perAccountInfo = (usedAfter - usedBefore) / count;
    options.log(`  RSS ${(rssEmpty / 2 ** 20).toFixed(0)} MiB empty -> ${(rssIdle / 2 ** 20).toFixed(0)} MiB with ${count} idle; Redis ${controlBytes} B control state per account`);
    return {
      id: '7',
      name: 'memory with N linked idle accounts after the storm',
      measured: round(controlBytes, 0),
      unit: 'B Redis control state / idle account',
      baseline: 1024,
      baselineLabel: 'target 1 KiB',
      ratio: round(controlBytes / 1024, 3),
      ratioLabel: 'of 1 KiB',
      target: '≤ 1 KiB per idle account (entries aside)',
      met: controlBytes <= 1024,
      scale: count === 100_000 ? undefined : `${count.toLocaleString('en-US')} accounts, not 100,000`,
      details: {
        accounts: count,
        rssEmptyMiB: round(rssEmpty / 2 ** 20, 1),
        rssIdleMiB: round(rssIdle / 2 ** 20, 1),
        rssPerIdleAccountBytes: round((rssIdle - rssEmpty) / count, 0),
        redisUsedMemoryPerAccountBytes: round(perAccountInfo, 0),
        memoryUsageControlKeys: control,
        memoryUsageIndexAndEntries: index,
        actorHashFieldLengths: actorFields,
        listingHashFieldLengths: listingFields,
      },
    };
  } finally {
    await engine.kill();
    redis.disconnect();
    await emulator.close();
    await redisServer.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }

  async function usedMemory(): Promise<number> {
    const info = await redis.info('memory');
    return Number(/^used_memory:(\d+)/m.exec(info)![1]);
  }
}
