import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator } from '../src/dropbox-emulator/server.js';
import { openRedis } from '../src/redis/connection.js';
import { accountKeys } from '../src/redis/keys.js';
import { EngineProcess, type LogLine } from './engine-process.js';
import { APP_KEY, APP_SECRET, median, pool, round, startRedis, waitUntil, type BenchOptions, type FigureResult } from './lib.js';

/**
 * Figure 8: the real engine process is killed (SIGKILL) with N accounts mid-sync (downloads held
 * by emulator latency); a new process boots on the same Redis and folder. Measured: from its
 * `listening` log line (engine.boot() starts right after) to the last account's `restored` line,
 * both stamped by the new process. The dead owner's leases are let expire first (LEASE_TTL_MS), so
 * the figure is the resume machinery, not the lease TTL; the wait is reported apart.
 */
export async function restart(options: BenchOptions): Promise<FigureResult> {
  const count = options.quick ? 20 : 1_000;
  const rounds = options.quick ? 1 : 3;
  const redisServer = await startRedis();
  const redis = await openRedis(redisServer.url);
  const emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit: 500 });
  emulator.faults.setLatency(10_000, 'files/download'); // every sync stays in `downloading`
  const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-bench-restart-'));
  // The figure is "1,000 accounts mid-sync when the process dies": let them all run at once (the
  // engine's default MAX_ACTIVE_RUNS of 64 would keep most of them waiting, not mid-sync).
  const env = { LOG_LEVEL: 'info', LEASE_TTL_MS: '1000', SWEEP_INTERVAL_MS: '200', DOWNLOAD_CONCURRENCY: '16', DROPBOX_TIMEOUT_MS: '60000', POLL_INTERVAL_MS: '0', MAX_ACTIVE_RUNS: String(count) };
  const accounts = Array.from({ length: count }, (_, i) => `dbid:restart-${i}`);
  let engine: EngineProcess | undefined;
  const fromBoot: number[] = [];
  const fromSpawn: number[] = [];
  const leaseWaits: number[] = [];
  const byBootPass: number[] = [];
  try {
    for (const id of accounts) {
      emulator.model.addAccount(id, { accessToken: `token-${id}` });
      for (let f = 0; f < 4; f++) emulator.model.writeFile(id, `/f${f}.txt`, `file ${f} of ${id}`);
    }
    engine = await EngineProcess.start({ redisUrl: redisServer.url, dataDir, dropboxUrl: emulator.url, env });
    await pool(accounts, 32, async (id) => {
      const response = await engine!.api(`/accounts/${id}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${id}` }) });
      await response.arrayBuffer();
    });
    const allDownloading = async () => {
      const pipeline = redis.pipeline();
      for (const id of accounts) pipeline.hget(accountKeys(id).actor, 'state');
      return ((await pipeline.exec()) ?? []).every(([, state]) => state === 'downloading');
    };
    await waitUntil(allDownloading, 120_000, 'every account to be downloading', 100);
    for (let r = 0; r < rounds; r++) {
      await engine.kill('SIGKILL');
      const killedAt = Date.now();
      await waitUntil(async () => {
        const pipeline = redis.pipeline();
        for (const id of accounts) pipeline.exists(accountKeys(id).lease);
        return ((await pipeline.exec()) ?? []).every(([, n]) => n === 0);
      }, 30_000, 'the dead owner\'s leases to expire', 20);
      leaseWaits.push(Date.now() - killedAt);
      let listeningAt = 0;
      let resumedByBoot: number | undefined;
      const restored = new Map<string, number>();
      const onLine = (line: LogLine) => {
        if (line.msg === 'listening') listeningAt = Date.parse(line.time!);
        else if (line.msg === 'restored' && line.accountId) restored.set(line.accountId, Date.parse(line.time!));
        else if (line.msg === 'resumed accounts with unfinished work') resumedByBoot = Number(line.resumed);
      };
      engine = await EngineProcess.start({ redisUrl: redisServer.url, dataDir, dropboxUrl: emulator.url, env, onLine });
      await waitUntil(() => restored.size === count, 60_000, 'every account to be restored', 5);
      // The boot pass logs its count once its last account is restored: after the line timed above.
      await waitUntil(() => resumedByBoot !== undefined, 60_000, "the boot pass's summary", 5);
      const last = Math.max(...restored.values());
      fromBoot.push(last - listeningAt);
      fromSpawn.push(last - engine.spawnedAt);
      byBootPass.push(resumedByBoot!);
      options.log(`  round ${r + 1}: ${count} restored ${last - listeningAt} ms after boot (${last - engine.spawnedAt} ms after spawn; leases expired ${leaseWaits[r]} ms after the kill)`);
      if (!(await allDownloading())) options.log('  (some accounts left `downloading`: later rounds are not all mid-download)');
    }
    const measured = median(fromBoot);
    return {
      id: '8',
      name: 'restart after kill -9 with N accounts mid-sync: boot → all restored',
      measured: round(measured, 0),
      unit: 'ms',
      baseline: 2_000,
      baselineLabel: 'target 2 s',
      ratio: round(measured / 2_000, 3),
      ratioLabel: 'of 2 s',
      target: '≤ 2 s',
      met: measured <= 2_000,
      scale: count === 1_000 ? undefined : `${count} accounts`,
      details: {
        accounts: count, rounds,
        fromBootMsPerRound: fromBoot,
        fromSpawnMsPerRound: fromSpawn,
        resumedByTheBootPassPerRound: byBootPass,
        leaseExpiryWaitMsPerRound: leaseWaits,
        leaseTtlMs: Number(env.LEASE_TTL_MS),
      },
    };
  } finally {
    await engine?.kill();
    redis.disconnect();
    await emulator.close();
    await redisServer.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
