import { serve } from '@hono/node-server';
import { Queue, Worker, type Job } from 'bullmq';
import { Hono } from 'hono';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { RunningEmulator } from '../src/dropbox-emulator/server.js';
import { isValidWebhookSignature, webhookAccounts } from '../src/http/webhook-signature.js';
import { BareSync } from './bare-sync.js';
import { APP_SECRET, postWebhook, startRedis, waitUntil, type BenchRedis } from './lib.js';

type SyncJob = { accountId: string };

/**
 * The storm's baseline: the same work as the engine, built the way BullMQ documents "one sync per
 * account, collapse triggers" (docs/reference xstate-redis.md §4.1): one Queue, one Worker with
 * `concurrency` = the engine's `maxActiveRuns`, one job per notified account deduplicated on
 * `sync-<accountId>` with `keepLastIfActive`. The processor is the bare script of figures 4 and 5
 * (`BareSync`: same SDK, same `createDropboxFetch`, list_folder or list_folder/continue, downloads,
 * plain `writeFile`) with its token and cursor kept per account in a Redis hash, as a bare script
 * would. The webhook is a Hono route on its own server doing the engine route's checks (signature,
 * parse) and then `queue.add` per account. Its own redis-server (same settings as the engine's).
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
  ) {}

  static async start(options: { emulator: RunningEmulator; concurrency: number; downloadsPerAccount: number; pageLimit: number }): Promise<BullmqBaseline> {
    const redisServer = await startRedis();
    const redis = new Redis(redisServer.url);
    // Producers and workers as BullMQ's production guide says (workers: maxRetriesPerRequest null).
    const connection = { url: redisServer.url, maxRetriesPerRequest: null };
    const queue = new Queue<SyncJob>('sync', { connection });
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-bench-bullmq-'));
    const done = new Set<string>();
    const failures: string[] = [];
    const processor = async (job: Job<SyncJob>) => {
      const { accountId } = job.data;
      const state = `bare:{${accountId}}`;
      const [token, cursor] = await redis.hmget(state, 'token', 'cursor');
      const bare = new BareSync(options.emulator.url, token!, join(dir, accountId), options.pageLimit, true);
      bare.cursor = cursor ?? '';
      await bare.sync(options.downloadsPerAccount);
      await redis.hset(state, 'cursor', bare.cursor);
    };
    const worker = new Worker<SyncJob>('sync', processor, { connection, concurrency: options.concurrency });
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
    return new BullmqBaseline(redisServer, redis, queue, worker, server, url, dir, done, failures);
  }

  /** Links accounts (token in Redis) and runs their first syncs through the queue. */
  async link(accounts: readonly string[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const id of accounts) pipeline.hset(`bare:{${id}}`, 'token', `token-${id}`);
    await pipeline.exec();
    this.done.clear();
    for (let i = 0; i < accounts.length; i += 500) {
      await Promise.all(accounts.slice(i, i + 500).map((accountId) => this.queue.add('sync', { accountId }, jobOptions(accountId))));
    }
    await this.drained(accounts.length, 'the first syncs (BullMQ)', 200);
  }

  /** Commands its redis-server has processed so far (`INFO stats`). */
  async commandsProcessed(): Promise<number> {
    return Number(/total_commands_processed:(\d+)/.exec(await this.redis.info('stats'))?.[1] ?? NaN);
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
