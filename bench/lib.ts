import { serve } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { startEmulator, type EmulatorOptions, type RunningEmulator } from '../src/dropbox-emulator/server.js';
import { legacyUserId, webhookBody, webhookSignature } from '../src/dropbox-emulator/webhook-sender.js';
import { Engine, type EngineOptions } from '../src/engine/engine.js';
import { createApp } from '../src/http/app.js';
import { isValidWebhookSignature, webhookAccounts } from '../src/http/webhook-signature.js';
import { silentLogger } from '../src/logger.js';
import { openRedis } from '../src/redis/connection.js';
import { EmbeddedRedis } from '../src/redis/embedded-redis.js';
import { postRequest, RawConnection } from './raw-http.mjs';

// One set of app credentials and one polling helper for tests and benchmarks alike.
import { ADMIN_TOKEN, APP_KEY, APP_SECRET } from '../test/support/fixtures.js';
export { ADMIN_TOKEN, APP_KEY, APP_SECRET, waitUntil } from '../test/support/fixtures.js';

/** One row of the table: a figure measured side by side with its baseline in the same run. */
export interface FigureResult {
  id: string;
  name: string;
  measured: number | null;
  unit: string;
  baseline: number | null;
  baselineLabel: string;
  /** measured ÷ baseline (or as stated in `ratioLabel`). */
  ratio: number | null;
  ratioLabel?: string;
  target: string;
  met: boolean | null;
  /** How the figure was scaled down from the size, if it was. */
  scale?: string;
  /** Secondary numbers (per-round values, other ratios, breakdowns). */
  details: Record<string, unknown>;
}

export interface BenchOptions {
  quick: boolean;
  log: (line: string) => void;
}

export const median = (xs: readonly number[]): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const percentile = (xs: readonly number[], p: number): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

export const round = (x: number | null | undefined, digits = 2): number | null =>
  x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Microseconds on the monotonic clock: the clock of `node --cpu-prof` sample times. */
export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * CPU time of this process's main thread (not its worker threads, not other processes), in µs;
 * null where /proc is not there. The machine is shared, so rates move with other people's load;
 * CPU per unit of work moves much less.
 */
export function mainThreadCpuUs(): number | null {
  try {
    return taskCpuUs(process.pid);
  } catch {
    return null;
  }
}

/** utime + stime of one of this process's threads, in µs (USER_HZ = 100). */
function taskCpuUs(tid: number | string): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/** Commands a redis-server has processed so far (`INFO stats` total_commands_processed). */
export async function commandsProcessed(redis: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1] ?? NaN);
}

/** CPU a redis-server has used so far, in µs (`INFO cpu`: its main thread and its background threads). */
export async function redisCpuUs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const seconds = (field: string) => Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return (seconds('used_cpu_sys') + seconds('used_cpu_user')) * 1e6;
}

/**
 * CPU time of this process's threads, in µs, from /proc (zeros where there is none): the main thread
 * (the event loop) and all the others together (libuv's thread pool doing the file system, V8's
 * workers doing concurrent GC and compilation; Node 20 does not name them apart).
 */
export function threadCpuUs(): { main: number; otherThreads: number } {
  const sums = { main: 0, otherThreads: 0 };
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return sums;
  }
  for (const tid of tids) {
    try {
      sums[Number(tid) === process.pid ? 'main' : 'otherThreads'] += taskCpuUs(tid);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return sums;
}

/** CPU so far, in µs: this process's threads (threadCpuUs) and a redis-server's. */
export async function cpuNow(redisCpu: () => Promise<number>): Promise<ReturnType<typeof threadCpuUs> & { redisServer: number }> {
  return { ...threadCpuUs(), redisServer: await redisCpu() };
}

/** The CPU spent between two cpuNow readings, in ms per unit of work (`units`: accounts, files…). */
export function cpuMsPer(before: Awaited<ReturnType<typeof cpuNow>>, after: Awaited<ReturnType<typeof cpuNow>>, units: number): Record<keyof typeof before, number | null> {
  const per = (key: keyof typeof before) => round((after[key] - before[key]) / 1000 / units, 3);
  return { main: per('main'), otherThreads: per('otherThreads'), redisServer: per('redisServer') };
}

/**
 * With `BENCH_PHASES=<file>`, appends `{ side, start, end }` (µs, `nowUs`) for one side's timed
 * window, so `bench/profile-summary.ts` can split a `--cpu-prof` profile into engine and baseline.
 */
export function recordPhase(side: string, startUs: number): void {
  const file = process.env.BENCH_PHASES;
  if (file) appendFileSync(file, JSON.stringify({ side, start: startUs, end: nowUs() }) + '\n');
}

/** A redis-server of the benchmark's own (appendfsync everysec: what `npm start` runs). */
export interface BenchRedis {
  server: EmbeddedRedis;
  url: string;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<BenchRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-bench-redis-'));
  const server = await EmbeddedRedis.start({ dir, appendfsync: 'everysec' });
  return {
    server,
    url: server.url,
    async stop() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Engine + Redis + the engine's HTTP app (with a bare baseline route on the same server), on an emulator at `emulatorUrl`. */
export interface EngineStack {
  redisServer: BenchRedis;
  redis: Redis;
  engine: Engine;
  /** The emulator the engine talks to: in this process (`Stack`) or another (`startStackOn`). */
  emulatorUrl: string;
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

/** An `EngineStack` with its emulator in this process, so a figure can seed and inspect its model directly. */
export interface Stack extends EngineStack {
  emulator: RunningEmulator;
}

export async function startStack(options: { engine?: Partial<EngineOptions>; emulator?: EmulatorOptions } = {}): Promise<Stack> {
  const redisServer = await startRedis();
  const emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit: 500, ...options.emulator });
  const stack = await startEngine(redisServer, emulator.url, options.engine, () => emulator.close());
  return { ...stack, emulator };
}

/**
 * The same stack on an emulator started elsewhere (e.g. `startEmulatorProcess`), which the caller
 * owns and closes: the emulator then does not share this process's event loop.
 */
export async function startStackOn(emulatorUrl: string, options: { engine?: Partial<EngineOptions> } = {}): Promise<EngineStack> {
  return startEngine(await startRedis(), emulatorUrl, options.engine, async () => {});
}

async function startEngine(
  redisServer: BenchRedis,
  emulatorUrl: string,
  engineOptions: Partial<EngineOptions> | undefined,
  closeEmulator: () => Promise<void>,
): Promise<EngineStack> {
  const redis = await openRedis(redisServer.url);
  const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-bench-data-'));
  const engine = new Engine({
    redis,
    dataDir,
    log: silentLogger,
    dropbox: { appKey: APP_KEY, appSecret: APP_SECRET, hosts: { api: emulatorUrl, content: emulatorUrl }, callTimeoutMs: 30_000 },
    downloadConcurrency: 8,
    downloadsPerAccount: 8,
    pageLimit: 500,
    retryBaseDelayMs: 10,
    ...engineOptions,
  });
  await engine.boot();
  const app = createApp({ engine, redis, appSecret: APP_SECRET, adminToken: ADMIN_TOKEN, log: silentLogger });
  // The baseline of figure 1 lives on the same server: a bare Hono route that answers 200.
  const outer = new Hono();
  outer.post('/bare', (c) => c.text('', 200));
  // Ablations of figure 1 (same server): the body read, then the signature check and parse as well.
  outer.post('/bare-body', async (c) => {
    await c.req.arrayBuffer();
    return c.text('', 200);
  });
  const verified = async (c: Context) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (!isValidWebhookSignature(body, c.req.header('X-Dropbox-Signature'), APP_SECRET)) return null;
    return webhookAccounts(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)));
  };
  outer.post('/bare-hmac', async (c) => c.text('', (await verified(c)) ? 200 : 400));
  outer.post('/bare-limit-hmac', bodyLimit({ maxSize: 1024 * 1024 }), async (c) => c.text('', (await verified(c)) ? 200 : 400));
  // The floor of any route that awaits one Redis round trip.
  outer.post('/bare-ping', async (c) => {
    await redis.ping();
    return c.text('', 200);
  });
  // The webhook route without hono's bodyLimit middleware (everything else the same).
  outer.post('/hmac-notify', async (c) => {
    const accounts = await verified(c);
    if (!accounts) return c.text('', 400);
    await engine.notify(accounts);
    return c.text('', 200);
  });
  outer.route('/', app);
  const server = await new Promise<Server>((resolve) => {
    const created = serve({ fetch: outer.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    redisServer,
    redis,
    engine,
    emulatorUrl,
    url,
    dataDir,
    async close() {
      await engine.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      redis.disconnect();
      await closeEmulator();
      await redisServer.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A notification exactly as Dropbox sends it: body and X-Dropbox-Signature. */
export function signedWebhook(accounts: readonly string[]): { body: string; headers: Record<string, string> } {
  const body = webhookBody(accounts, accounts.map(legacyUserId));
  return { body, headers: { 'Content-Type': 'application/json', 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) } };
}

/**
 * Posts signed webhooks one at a time on a raw keep-alive socket (raw-http.mjs). For a figure that
 * times a webhook's path in the engine's own thread (figure 5): fetch's cost per request, about a
 * third of a millisecond there, is the sender's, not the engine's.
 */
export class WebhookPoster {
  private answer: ((status: number) => void) | undefined;
  private connection: RawConnection | undefined;
  /** The server closes a keep-alive connection idle for 5 s: a new one is opened at once. */
  private connecting: Promise<void> | undefined;
  private closing = false;

  private constructor(private readonly url: string) {}

  static async open(url: string): Promise<WebhookPoster> {
    const poster = new WebhookPoster(url);
    await poster.connect();
    return poster;
  }

  async post(accounts: readonly string[]): Promise<number> {
    if (this.answer) throw new Error('WebhookPoster sends one webhook at a time');
    await this.connecting;
    const { body, headers } = signedWebhook(accounts);
    const request = postRequest(this.url, '/webhooks/dropbox', headers, body);
    return new Promise((resolve) => {
      this.answer = resolve;
      this.connection!.send(request);
    });
  }

  close(): void {
    this.closing = true;
    this.connection?.close();
  }

  private connect(): Promise<void> {
    this.connecting = RawConnection.open(
      this.url,
      (status) => this.settle(status),
      () => {
        this.settle(0); // a request in flight got no answer
        // A failure to reconnect surfaces at the next post, which awaits `connecting`.
        if (!this.closing) this.connect().catch(() => {});
      },
    ).then((connection) => {
      this.connection = connection;
    });
    return this.connecting;
  }

  private settle(status: number): void {
    const answer = this.answer;
    this.answer = undefined;
    answer?.(status);
  }
}

export async function postWebhook(url: string, accounts: readonly string[]): Promise<number> {
  const { body, headers } = signedWebhook(accounts);
  const response = await fetch(`${url}/webhooks/dropbox`, { method: 'POST', headers, body });
  await response.arrayBuffer();
  return response.status;
}

/** Links in Redis and wakes the actor, as PUT /accounts/:id does (minus HTTP). */
export async function linkAccount(stack: Stack, accountId: string): Promise<void> {
  const accessToken = `token-${accountId}`;
  if (!stack.emulator.model.hasAccount(accountId)) stack.emulator.model.addAccount(accountId, { accessToken });
  await stack.engine.link(accountId, { accessToken });
}

export async function isIdle(stack: EngineStack, accountId: string): Promise<boolean> {
  const box = await stack.engine.mailbox.read(accountId);
  if (box.status !== 'idle' || box.dirty) return false;
  const actor = stack.engine.host.actor(accountId);
  return !actor || actor.getSnapshot().value === 'idle';
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

export function fmt(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  return String(Math.round(x * 10 ** digits) / 10 ** digits);
}
