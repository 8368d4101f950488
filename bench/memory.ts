import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { startEmulator } from '../src/dropbox-emulator/server.js';
import { openRedis } from '../src/redis/connection.js';
import { accountKeys } from '../src/redis/keys.js';
import { sealedPlaintext } from '../src/accounts/account-store.js';
import { storedCursor, type StoredCursor } from '../src/sync/stored-cursor.js';
import { TokenCipher } from '../src/accounts/token-cipher.js';
import { EngineProcess } from './engine-process.js';
import { APP_KEY, APP_SECRET, pool, postWebhook, round, sleep, startRedis, waitUntil, type BenchOptions, type FigureResult } from './lib.js';
import { allIdle } from './storm.js';

// The fence is a field of the mailbox, not a key of its own (keys.fence names the mailbox). An idle,
// passivated account should have the first three only.
const CONTROL_KEYS = ['mailbox', 'credentials', 'cursor', 'pageCursor', 'lease', 'actor', 'changes', 'queue'] as const;
const INDEX_KEYS = ['files', 'ignored', 'fileIds', 'entryIds', 'entries'] as const;

/** Links in flight at once. More than the engine's run limit (64) keeps its run slots busy. */
const LINK_CONCURRENCY = 96;

const MiB = 2 ** 20;

/**
 * Figure 7: memory with many linked idle accounts after a storm, in the real engine process (so
 * its RSS holds the engine alone; the emulator runs here). Idle actors are passivated (short
 * IDLE_TIMEOUT_MS), so an idle account should cost the process nothing and Redis only its state.
 * Baseline: the same process booted with no account.
 *
 * RSS right after the storm is mostly the high-water mark of V8's heap (it keeps the pages it grew
 * to until a major GC shrinks it), not objects the accounts retain. So the engine runs with the
 * inspector on loopback (`--inspect=127.0.0.1:0`, no src change) and the benchmark forces a full
 * GC through it, then reads RSS and `process.memoryUsage()` again: the retained cost per account
 * is heapUsed after GC, empty vs idle.
 *
 * Redis: MEMORY USAGE of one idle account's keys. The accounts are linked with the emulator's short
 * tokens, stored as plaintext, and have short ids; the figure's number is the control state of the
 * same account with what production stores instead (productionControlState): a sealed production
 * credential and Dropbox's longer account id.
 */
export async function memory(options: BenchOptions): Promise<FigureResult> {
  const count = options.quick ? 50 : Number(process.env.BENCH_MEMORY_ACCOUNTS ?? 20_000);
  const redisServer = await startRedis();
  const redis = await openRedis(redisServer.url);
  const emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit: 500 });
  // Counted in process so that waiting for 100,000 syncs does not poll every mailbox in Redis
  // (a pipelined read of all of them) while the engine is still busy: the engine shares the 2 cores.
  let downloads = 0;
  const recordDownload = emulator.stats.recordDownload.bind(emulator.stats);
  emulator.stats.recordDownload = (accountId, pathLower) => {
    downloads++;
    recordDownload(accountId, pathLower);
  };
  const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-bench-mem-'));
  const engine = await EngineProcess.start({
    redisUrl: redisServer.url, dataDir, dropboxUrl: emulator.url,
    env: {
      LOG_LEVEL: 'warn', IDLE_TIMEOUT_MS: '500', LEASE_TTL_MS: '5000', DOWNLOAD_CONCURRENCY: '16', POLL_INTERVAL_MS: '0', SWEEP_INTERVAL_MS: '60000',
      NODE_OPTIONS: [process.env.NODE_OPTIONS, '--inspect=127.0.0.1:0'].filter(Boolean).join(' '),
    },
  });
  const inspector = await EngineInspector.connect(engine.output);
  const accounts = Array.from({ length: count }, (_, i) => `dbid:mem-${i}`);
  const phases: Record<string, number> = {};
  let phaseStarted = performance.now();
  const phase = (name: string) => {
    const now = performance.now();
    phases[name] = round((now - phaseStarted) / 1000, 1)!;
    phaseStarted = now;
    options.log(`  ${name}: ${phases[name]} s`);
  };
  try {
    await sleep(1_000);
    const empty = await inspector.measure(engine);
    const usedBefore = await usedMemory();
    phaseStarted = performance.now();
    await forEachYielding(accounts, (id) => {
      emulator.model.addAccount(id, { accessToken: `token-${id}` });
      emulator.model.writeFile(id, '/first.txt', `first file of ${id}`);
    });
    phase('emulator accounts created');
    // Each account through PUT /accounts/:id (the engine's real link, its first sync included).
    await pool(accounts, LINK_CONCURRENCY, async (id) => {
      const response = await engine.api(`/accounts/${id}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${id}` }) });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`link answered ${response.status}`);
    });
    phase('link requests answered');
    await waitForSyncs(count, 'the first syncs');
    phase('first syncs done');

    // The storm: one changed file each, all notified at once.
    await forEachYielding(accounts, (id) => emulator.model.writeFile(id, '/changed.txt', `a change for ${id}`));
    phaseStarted = performance.now();
    const batches: string[][] = [];
    for (let i = 0; i < accounts.length; i += 500) batches.push(accounts.slice(i, i + 500));
    await Promise.all(batches.map((batch) => postWebhook(engine.url, batch)));
    await waitForSyncs(2 * count, 'the storm to end');
    phase('storm');
    // Every actor passivated: no lease left.
    await waitUntil(async () => (await leasesHeld(accounts)) === 0, 300_000, 'every idle actor to be passivated', 500);
    phase('passivation');
    await sleep(2_000);
    const idle = await inspector.measure(engine);
    // A diagnostic: BENCH_HEAP_SNAPSHOT=<file> writes the engine's heap, idle accounts and all, for
    // a look at what each one still holds (open it in Chrome's DevTools, Memory tab).
    if (process.env.BENCH_HEAP_SNAPSHOT) await inspector.writeHeapSnapshot(process.env.BENCH_HEAP_SNAPSHOT);
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
    const mailboxFields = await fieldLengths(keys.mailbox);
    const emulatorTokensBytes = Object.values(control).reduce((a, b) => a + b, 0);
    // The same idle account as production would store it: the figure's number is the larger of the two id forms.
    const production = await productionControlState(sample);
    const controlBytes = Math.max(production.benchId.total, production.dropboxId.total);
    const perAccountInfo = (usedAfter - usedBefore) / count;
    const perAccount = (after: number, before: number) => round((after - before) / count, 0);
    options.log(
      `  RSS ${mib(empty.rss)} MiB empty -> ${mib(idle.rss)} MiB with ${count} idle (peak ${mib(idle.peakRss)}), ` +
        `after a forced GC ${mib(empty.afterGc.rss)} -> ${mib(idle.afterGc.rss)} MiB; heap used after GC ${mib(empty.afterGc.heapUsed)} -> ${mib(idle.afterGc.heapUsed)} MiB ` +
        `(${perAccount(idle.afterGc.heapUsed, empty.afterGc.heapUsed)} B per account); Redis control state per account ${emulatorTokensBytes} B with the emulator's tokens, ` +
        `${production.benchId.total} B with a production credential, ${production.dropboxId.total} B with that and a Dropbox-length id`,
    );
    return {
      id: '7',
      name: 'memory with N linked idle accounts after the storm',
      measured: round(controlBytes, 0),
      unit: 'B Redis control state / idle account (production credential)',
      baseline: 1024,
      baselineLabel: 'target 1 KiB',
      ratio: round(controlBytes / 1024, 3),
      ratioLabel: 'of 1 KiB',
      target: '≤ 1 KiB per idle account (entries aside)',
      met: controlBytes <= 1024,
      scale: count === 100_000 ? undefined : `${count.toLocaleString('en-US')} accounts, not 100,000`,
      details: {
        accounts: count,
        phaseSeconds: phases,
        rssEmptyMiB: round(empty.rss / MiB, 1),
        rssIdleMiB: round(idle.rss / MiB, 1),
        rssPeakMiB: round(idle.peakRss / MiB, 1),
        rssPerIdleAccountBytes: perAccount(idle.rss, empty.rss),
        rssAfterGcEmptyMiB: round(empty.afterGc.rss / MiB, 1),
        rssAfterGcIdleMiB: round(idle.afterGc.rss / MiB, 1),
        rssAfterGcPerIdleAccountBytes: perAccount(idle.afterGc.rss, empty.afterGc.rss),
        heapTotalIdleBeforeGcMiB: round(idle.heapTotal / MiB, 1),
        heapUsedAfterGcEmptyMiB: round(empty.afterGc.heapUsed / MiB, 1),
        heapUsedAfterGcIdleMiB: round(idle.afterGc.heapUsed / MiB, 1),
        heapUsedAfterGcPerIdleAccountBytes: perAccount(idle.afterGc.heapUsed, empty.afterGc.heapUsed),
        externalAfterGcPerIdleAccountBytes: perAccount(idle.afterGc.external, empty.afterGc.external),
        redisUsedMemoryPerAccountBytes: round(perAccountInfo, 0),
        // The sample account as linked here: the emulator's short token, plaintext, a short id.
        memoryUsageControlKeys: control,
        controlStateEmulatorTokensBytes: emulatorTokensBytes,
        memoryUsageIndexAndEntries: index,
        actorHashFieldLengths: actorFields,
        mailboxFieldLengths: mailboxFields,
        mailboxEncoding: await redis.object('ENCODING', keys.mailbox),
        // The same account with a production credential, sealed, with an id as long as the sample's
        // and with a Dropbox-length one (see productionControlState).
        productionCredentialsSealedBytes: production.sealedBytes,
        memoryUsageProductionControlKeys: production.benchId.keys,
        controlStateWithProductionCredentialsBytes: production.benchId.total,
        memoryUsageProductionControlKeysDropboxId: production.dropboxId.keys,
        controlStateWithProductionCredentialsDropboxIdBytes: production.dropboxId.total,
      },
    };
  } finally {
    inspector.close();
    await engine.kill();
    redis.disconnect();
    await emulator.close();
    await redisServer.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }

  /**
   * Each account downloads one file per run, so the emulator's count says when the runs are done
   * without touching Redis; only then is every mailbox read (a slow poll: it is 100,000 reads).
   */
  async function waitForSyncs(expectedDownloads: number, what: string): Promise<void> {
    await waitUntil(() => downloads >= expectedDownloads, 60 * 60_000, what, 250);
    await waitUntil(async () => (await allIdle(redis, accounts)) === 0, 10 * 60_000, what, 1_000);
  }

  async function leasesHeld(ids: readonly string[]): Promise<number> {
    let held = 0;
    for (let i = 0; i < ids.length; i += 5_000) {
      const pipeline = redis.pipeline();
      for (const id of ids.slice(i, i + 5_000)) pipeline.exists(accountKeys(id).lease);
      for (const [, n] of (await pipeline.exec()) ?? []) held += n as number;
    }
    return held;
  }

  /**
   * MEMORY USAGE of the sample account's control state as production would store it, on probe keys
   * built from it: its mailbox and cursor copied as they are, and credentials as the engine seals
   * them with TOKEN_ENCRYPTION_KEY set and a link through OAuth (a 150-character access token
   * "sl." + 147, a 64-character refresh token, the access token's expiry). Twice: under an id as long
   * as the sample's with the sample's own cursor (what the figure's own accounts cost), and under a
   * Dropbox-length id ("dbid:" + 40 characters: key names are part of what Redis stores) with a
   * cursor Dropbox returned (195 characters, the longer of two in public test fixtures; the
   * emulator's are 146 to 192). The probe ids are not linked, so the engine never touches them;
   * they are deleted afterwards.
   */
  async function productionControlState(sampleId: string) {
    const token = (n: number) => randomBytes(n).toString('base64url').slice(0, n);
    const cipher = new TokenCipher(randomBytes(32));
    const credentials = { accessToken: `sl.${token(147)}`, refreshToken: token(64), accessTokenExpiresAt: Date.now() + 4 * 3_600_000 };
    const sample = accountKeys(sampleId);
    // The cursor as stored (bytes: src/sync/stored-cursor.ts), copied byte for byte.
    const [mailbox, sampleCursor] = [await redis.hgetall(sample.mailbox), await redis.getBuffer(sample.cursor)];
    const measure = async (probeId: string, cursor: StoredCursor | null) => {
      const probe = accountKeys(probeId);
      const sealed = cipher.seal(sealedPlaintext(credentials), probeId);
      await redis.hset(probe.mailbox, mailbox);
      await redis.set(probe.credentials, sealed);
      if (cursor !== null) await redis.set(probe.cursor, cursor);
      const keys: Record<string, number> = {};
      for (const name of ['mailbox', 'credentials', 'cursor'] as const) {
        const bytes = (await redis.call('MEMORY', 'USAGE', probe[name], 'SAMPLES', '0')) as number | null;
        if (bytes !== null) keys[name] = bytes;
      }
      await redis.del(probe.mailbox, probe.credentials, probe.cursor);
      return { keys, total: Object.values(keys).reduce((a, b) => a + b, 0), sealedBytes: sealed.length };
    };
    // Same length as the sample's id ("dbid:mem-" + digits), and Dropbox's form.
    const benchId = await measure(`dbid:mem-${'p'.repeat(sampleId.length - 'dbid:mem-'.length)}`, sampleCursor);
    const dropboxId = await measure(`dbid:${token(40)}`, storedCursor(DROPBOX_CURSOR));
    return { benchId, dropboxId, sealedBytes: benchId.sealedBytes };
  }

  async function usedMemory(): Promise<number> {
    const info = await redis.info('memory');
    return Number(/^used_memory:(\d+)/m.exec(info)![1]);
  }
}

const mib = (bytes: number) => (bytes / MiB).toFixed(0);

/** A cursor Dropbox's list_folder returned, from a public test fixture: 195 characters of base64url. */
const DROPBOX_CURSOR =
  'AAGCmtkBfAAxfYBp8WQUxW5pxUiT8YqEgBZkX5XJcUPP9Jn30T1dEKOkZtTKXzlUHPqNnKmEkXy9CrRDZmfHrnwyl68rwi6oEHVcwa4l8-BT_nHsZ6chH00bnqOZtgWymatxb_Lyh3EL4JlJ_ENLOYje6Y3OWGqOmE3DP_RfbV1Z-KBFLUqO2ARoQi9MfavtEi8';

/**
 * Gives the event loop a turn every thousand items: filling the emulator for 100,000 accounts in one
 * go blocks it for seconds, long enough for the engine's HTTP server to close an idle keep-alive
 * connection unnoticed, and the next request on it then fails with "other side closed".
 */
async function forEachYielding<T>(items: readonly T[], fn: (item: T) => void): Promise<void> {
  for (let i = 0; i < items.length; i++) {
    fn(items[i]!);
    if (i % 1_000 === 999) await new Promise((resolve) => setImmediate(resolve));
  }
}

interface MemorySample {
  /** VmRSS as found (high-water of the heap included). */
  rss: number;
  /** VmHWM: the largest RSS the process ever had. */
  peakRss: number;
  heapTotal: number;
  heapUsed: number;
  /** After two full GCs forced through the inspector. */
  afterGc: { rss: number; heapUsed: number; heapTotal: number; external: number };
}

/**
 * A DevTools-protocol session on the engine process (`--inspect=127.0.0.1:0`): forces full GCs
 * (`HeapProfiler.collectGarbage`) and reads `process.memoryUsage()` in it, with no hook in src.
 */
class EngineInspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (message.id === undefined) return;
      const call = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error) call?.reject(new Error(message.error.message));
      else call?.resolve(message.result);
    });
  }

  /** Connects to the inspector whose address the process printed on stderr at start. */
  static async connect(output: string): Promise<EngineInspector> {
    const url = /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1];
    if (!url) throw new Error(`the engine process printed no inspector address:\n${output.slice(-2_000)}`);
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    return new EngineInspector(socket);
  }

  private send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private async memoryUsage(): Promise<NodeJS.MemoryUsage> {
    const result = (await this.send('Runtime.evaluate', { expression: 'process.memoryUsage()', returnByValue: true })) as { result: { value: NodeJS.MemoryUsage } };
    return result.result.value;
  }

  /** RSS and heap as found, then after forced full GCs (the second one frees what the first finalized). */
  async measure(engine: EngineProcess): Promise<MemorySample> {
    const rss = engine.rssBytes();
    const peakRss = peakRssBytes(engine);
    const before = await this.memoryUsage();
    await this.send('HeapProfiler.collectGarbage');
    await this.send('HeapProfiler.collectGarbage');
    await sleep(500);
    const after = await this.memoryUsage();
    return {
      rss,
      peakRss,
      heapTotal: before.heapTotal,
      heapUsed: before.heapUsed,
      afterGc: { rss: engine.rssBytes(), heapUsed: after.heapUsed, heapTotal: after.heapTotal, external: after.external },
    };
  }

  /** The engine's heap as a .heapsnapshot file (HeapProfiler.takeHeapSnapshot, streamed in chunks). */
  async writeHeapSnapshot(file: string): Promise<void> {
    const chunks: string[] = [];
    const onChunk = (data: unknown) => {
      const message = JSON.parse(String(data)) as { method?: string; params?: { chunk: string } };
      if (message.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(message.params!.chunk);
    };
    this.socket.on('message', onChunk);
    try {
      await this.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    } finally {
      this.socket.off('message', onChunk);
    }
    writeFileSync(file, chunks.join(''));
  }

  close(): void {
    this.socket.close();
  }
}

function peakRssBytes(engine: EngineProcess): number {
  const status = readFileSync(`/proc/${engine.childProcess!.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}
