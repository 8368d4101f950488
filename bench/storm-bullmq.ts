import { serve } from '@hono/node-server';
import { Queue, Worker, type Job } from 'bullmq';
import { Hono } from 'hono';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { AccountStore } from '../src/accounts/account-store.js';
import { DropboxSession, type DropboxAppSettings } from '../src/dropbox/dropbox-session.js';
import type { RunningEmulator } from '../src/dropbox-emulator/server.js';
import { systemClock } from '../src/engine/clock.js';
import { EngineEvents } from '../src/engine/engine-events.js';
import { Semaphore } from '../src/engine/semaphore.js';
import { TempFilesAhead } from '../src/sync/write-file.js';
import { EntryStore } from '../src/entries/entry-store.js';
import { isValidWebhookSignature, webhookAccounts } from '../src/http/webhook-signature.js';
import { silentLogger } from '../src/logger.js';
import { Mailbox } from '../src/mailbox/mailbox.js';
import { openRedis } from '../src/redis/connection.js';
import { applyChanges } from '../src/sync/apply-changes.js';
import { downloadQueue } from '../src/sync/download-queue.js';
import { listChanges } from '../src/sync/list-changes.js';
import type { SyncDeps } from '../src/sync/sync-deps.js';
import { SyncStore } from '../src/sync/sync-store.js';
import { BareSync } from './bare-sync.js';
import { APP_KEY, APP_SECRET, commandsProcessed, postWebhook, redisCpuUs, startRedis, waitUntil, type BenchRedis } from './lib.js';

type SyncJob = { accountId: string };

/**
 * What a job does:
 * - `engine-steps`: the engine's own sync steps (list_folder/continue with the persisted cursor and
 *   queue, the apply step with the file index, the downloads with entries for posts), called one
 *   after the other, unfenced, with the engine's settings. The same work as the engine's runs,
 *   without what the engine adds around them: actors, persisted snapshots, leases, the mailbox.
 * - `bare`: the bare script of figures 4 and 5 (`BareSync`): token and cursor in a Redis hash,
 *   downloads written with the engine's atomic write. No file index, no entries, no persisted queue:
 *   less work than a sync of Mailroom's.
 */
export type BaselineWork = 'engine-steps' | 'bare';

interface ProcessorOptions {
  emulator: RunningEmulator;
  dir: string;
  downloadsPerAccount: number;
  pageLimit: number;
  /** Downloads in flight in the process (the engine's `downloadConcurrency`), engine-steps only. */
  downloadConcurrency: number;
}

type Processor = { link(accounts: readonly string[]): Promise<void>; run(accountId: string): Promise<void>; close(): void };

/** The bare script: token and cursor per account in a hash of its own. */
function bareProcessor(redis: Redis, options: ProcessorOptions): Processor {
  return {
    async link(accounts) {
      const pipeline = redis.pipeline();
      for (const id of accounts) pipeline.hset(`bare:{${id}}`, 'token', `token-${id}`);
      await pipeline.exec();
    },
    async run(accountId) {
      const state = `bare:{${accountId}}`;
      const [token, cursor] = await redis.hmget(state, 'token', 'cursor');
      const bare = new BareSync(options.emulator.url, token!, join(options.dir, accountId), options.pageLimit, true);
      bare.cursor = cursor ?? '';
      await bare.sync(options.downloadsPerAccount);
      await redis.hset(state, 'cursor', bare.cursor);
    },
    close() {},
  };
}

/** The engine's sync steps on a connection set up as the engine's (scripts, auto-pipelining). */
async function engineStepsProcessor(url: string, options: ProcessorOptions): Promise<Processor> {
  const redis = await openRedis(url);
  const accounts = new AccountStore(redis);
  const app: DropboxAppSettings = { appKey: APP_KEY, appSecret: APP_SECRET, hosts: { api: options.emulator.url, content: options.emulator.url }, callTimeoutMs: 30_000 };
  const store = new SyncStore(redis);
  const entries = new EntryStore(redis, { newId: randomUUID, clock: () => systemClock.now() });
  const mailbox = new Mailbox(redis);
  const base: Omit<SyncDeps, 'session'> = {
    store,
    entries,
    accounts,
    mailbox,
    clock: systemClock,
    log: silentLogger,
    events: new EngineEvents(),
    dataDir: options.dir,
    downloadSlots: new Semaphore(options.downloadConcurrency),
    writeSlots: new Semaphore(options.downloadConcurrency),
    tempFiles: new TempFilesAhead(),
    downloadsPerAccount: options.downloadsPerAccount,
    pageLimit: options.pageLimit,
    random: Math.random,
    maxAttemptsPerCall: 4,
    retryBaseDelayMs: 250,
    lostOwnership: () => {},
    // BullMQ's own concurrency bounds the jobs; the steps never wait in backoff here.
    runSlot: async () => {},
    requestReconcile: () => {},
    own: () => ({ token: '', store, entries, mailbox }),
  };
  return {
    async link(ids) {
      await Promise.all(ids.map((id) => accounts.link(id, { accessToken: `token-${id}` }, [], Date.now())));
    },
    async run(accountId) {
      // One session per job, as the engine keeps one per actor in memory.
      const account = await accounts.get(accountId);
      if (!account) throw new Error(`${accountId} is not linked`);
      const session = new DropboxSession(account.credentials, app);
      const deps: SyncDeps = { ...base, session: async () => session };
      const signal = new AbortController().signal;
      const { applyInput } = await listChanges(accountId, signal, deps);
      const { queue } = await applyChanges(accountId, signal, deps, applyInput);
      await downloadQueue(accountId, signal, deps, queue);
    },
    close() {
      redis.disconnect();
    },
  };
}

/**
 * The storm's baseline, built the way BullMQ documents "one sync per account, collapse triggers"
 * (docs/reference xstate-redis.md §4.1): one Queue, one Worker with `concurrency` = the engine's
 * `maxActiveRuns`, one job per notified account deduplicated on `sync-<accountId>` with
 * `keepLastIfActive`. What a job does is `BaselineWork`. The webhook is a Hono route on its own
 * server doing the engine route's checks (signature, parse) and then `queue.add` per account. Its
 * own redis-server (same settings as the engine's).
 */
export class BullmqBaseline {
  private constructor(
    private readonly redisServer: BenchRedis,
    private readonly redis: Redis,
    private readonly queue: Queue<SyncJob>,
    private readonly worker: Worker<SyncJob>,
    private readonly server: Server,
    readonly url: string,
    private readonly dir: string,
    private readonly done: Set<string>,
    private readonly failures: string[],
    private readonly processor: Processor,
  ) {}

  static async start(options: Omit<ProcessorOptions, 'dir'> & { concurrency: number; work: BaselineWork }): Promise<BullmqBaseline> {
    const redisServer = await startRedis();
    const redis = new Redis(redisServer.url);
    // Producers and workers as BullMQ's production guide says (workers: maxRetriesPerRequest null).
    const connection = { url: redisServer.url, maxRetriesPerRequest: null };
    const queue = new Queue<SyncJob>('sync', { connection });
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-bench-bullmq-'));
    const done = new Set<string>();
    const failures: string[] = [];
    const processor = options.work === 'bare' ? bareProcessor(redis, { ...options, dir }) : await engineStepsProcessor(redisServer.url, { ...options, dir });
    const worker = new Worker<SyncJob>('sync', (job: Job<SyncJob>) => processor.run(job.data.accountId), { connection, concurrency: options.concurrency });
    worker.on('completed', (job) => done.add(job.data.accountId));
    worker.on('failed', (job, error) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) failures.push(`${job.data.accountId}: ${error.message}`);
    });
    worker.on('error', () => {});
    await worker.waitUntilReady();

    const app = new Hono();
    app.post('/webhooks/dropbox', async (c) => {
      const body = new Uint8Array(await c.req.arrayBuffer());
      if (!isValidWebhookSignature(body, c.req.header('X-Dropbox-Signature'), APP_SECRET)) return c.text('', 403);
      const accounts = webhookAccounts(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)));
      if (!accounts) return c.text('', 400);
      await Promise.all([...new Set(accounts)].map((accountId) => queue.add('sync', { accountId }, jobOptions(accountId))));
      return c.text('', 200);
    });
    const server = await new Promise<Server>((resolve) => {
      const created = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return new BullmqBaseline(redisServer, redis, queue, worker, server, url, dir, done, failures, processor);
  }

  /** Links accounts (token in Redis) and runs their first syncs through the queue. */
  async link(accounts: readonly string[]): Promise<void> {
    await this.processor.link(accounts);
    this.done.clear();
    for (let i = 0; i < accounts.length; i += 500) {
      await Promise.all(accounts.slice(i, i + 500).map((accountId) => this.queue.add('sync', { accountId }, jobOptions(accountId))));
    }
    await this.drained(accounts.length, 'the first syncs (BullMQ)', 200);
  }

  /** CPU its redis-server has used so far, in µs. */
  redisCpuUs(): Promise<number> {
    return redisCpuUs(this.redis);
  }

  /** Commands its redis-server has processed so far (`INFO stats`). */
  async commandsProcessed(): Promise<number> {
    return commandsProcessed(this.redis);
  }

  /** Posts signed webhooks for these batches of accounts, all at once; resolves when all are answered. */
  async notify(batches: readonly string[][]): Promise<number[]> {
    this.done.clear();
    return Promise.all(batches.map((batch) => postWebhook(this.url, batch)));
  }

  /** Waits until `count` accounts completed a job since the last notify/link and the queue is empty. */
  async drained(count: number, what: string, pollMs = 20): Promise<void> {
    await waitUntil(async () => {
      if (this.failures.length) throw new Error(`BullMQ jobs failed: ${this.failures.slice(0, 3).join('; ')}`);
      if (this.done.size < count) return false;
      const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return Object.values(counts).every((n) => n === 0);
    }, 30 * 60_000, what, pollMs);
  }

  async close(): Promise<void> {
    await this.worker.close();
    await this.queue.close();
    this.processor.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections?.();
    });
    this.redis.disconnect();
    await this.redisServer.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The job options of the reference's recipe (§4.1). */
function jobOptions(accountId: string) {
  return {
    deduplication: { id: `sync-${accountId}`, keepLastIfActive: true },
    removeOnComplete: true,
    removeOnFail: 1000,
    attempts: 5,
    backoff: { type: 'exponential', delay: 1000 },
  };
}
