import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { isPostPath } from '../../src/entries/build-entry.js';
import { startEmulator, type EmulatorOptions, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { createApp } from '../../src/http/app.js';
import { createLogger, silentLogger, type Logger } from '../../src/logger.js';
import { openRedis } from '../../src/redis/connection.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { ADMIN_TOKEN, APP_KEY, APP_SECRET, waitUntil } from './fixtures.js';
import { TestRedis } from './redis-server.js';

export { ADMIN_TOKEN, APP_KEY, APP_SECRET, waitUntil } from './fixtures.js';

export interface Harness {
  redisServer: TestRedis;
  redis: Redis;
  emulator: RunningEmulator;
  engine: Engine;
  /** The engine's HTTP server, e.g. http://127.0.0.1:PORT */
  url: string;
  dataDir: string;
  /** Creates an account in the emulator and links it through the HTTP API. */
  linkAccount(accountId: string, body?: Record<string, unknown>): Promise<Response>;
  /** A new account holding `files` (path -> content, with `clientModified` when given), linked, its first sync done. */
  linkSynced(accountId: string, files: Record<string, string>, clientModified?: Date): Promise<void>;
  api(path: string, init?: RequestInit): Promise<Response>;
  waitForIdle(accountId: string, timeoutMs?: number): Promise<void>;
  /** Notifies the engine as a webhook would, then waits for the listing that follows and for the run to end. */
  syncChanges(accountId: string): Promise<void>;
  /** GET /accounts/:id through the HTTP API. */
  status(accountId: string): Promise<StatusBody>;
  /** Another engine (as another process would be) on the same Redis, emulator and mirror folder. */
  startPeer(engine: Partial<EngineOptions>, beforeBoot?: (engine: Engine) => void): Promise<EngineServer>;
  close(): Promise<void>;
}

export interface StatusBody {
  state: string;
  dirty: boolean;
  pending: number;
  setAside: number;
  setAsideFiles: { path: string; kind: string; message: string; at: string }[];
  lastError: { kind: string; message: string } | null;
}

export interface HarnessOptions {
  engine?: Partial<EngineOptions>;
  emulator?: EmulatorOptions;
  redisServer?: TestRedis;
  /** Deadline of one Dropbox call (default 2 s). */
  dropboxCallTimeoutMs?: number;
  /** Deadline of one Redis command (default 5 s, as in production). */
  redisCommandTimeoutMs?: number;
  /** Receives the engine's JSON log lines (default: silent unless TEST_LOG is set). */
  logLines?: string[];
}

/** An engine with its HTTP server, on a given Redis, emulator and data folder. */
export interface EngineServer {
  engine: Engine;
  redis: Redis;
  url: string;
  /** A request to this server's API with the admin token, as `Harness.api`. */
  api(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/**
 * Starts an engine and its app on a free port. A harness starts one; a test of several processes'
 * worth of engines on one machine (shared Redis, emulator and mirror folder) starts more with
 * `h.startPeer`.
 */
/** A request with the admin token and a JSON body type, as the CLI and an operator send them. */
function adminFetch(url: string, init: RequestInit): Promise<Response> {
  return fetch(url, { ...init, headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json', ...init.headers } });
}

export async function startEngineServer(options: {
  redisUrl: string;
  dataDir: string;
  emulatorUrl: string;
  log: Logger;
  engine?: Partial<EngineOptions>;
  dropboxCallTimeoutMs?: number;
  redisCommandTimeoutMs?: number;
  /** Runs before boot, e.g. to wrap a method of the engine for a test. */
  beforeBoot?: (engine: Engine) => void;
}): Promise<EngineServer> {
  const redis = await openRedis(options.redisUrl, { commandTimeoutMs: options.redisCommandTimeoutMs });
  const engine = new Engine({
    redis,
    dataDir: options.dataDir,
    log: options.log,
    dropbox: { appKey: APP_KEY, appSecret: APP_SECRET, hosts: { api: options.emulatorUrl, content: options.emulatorUrl }, callTimeoutMs: options.dropboxCallTimeoutMs ?? 2_000 },
    downloadConcurrency: 8,
    downloadsPerAccount: 4,
    pageLimit: 100,
    retryBaseDelayMs: 10,
    ...options.engine,
  });
  options.beforeBoot?.(engine);
  await engine.boot();
  const app = createApp({ engine, redis, appSecret: APP_SECRET, adminToken: ADMIN_TOKEN, log: options.log });
  const server = await new Promise<Server>((resolve) => {
    const created = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    engine,
    redis,
    url,
    api: (path, init = {}) => adminFetch(url + path, init),
    async close() {
      await engine.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
      redis.disconnect();
    },
  };
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const redisServer = options.redisServer ?? (await TestRedis.start());
  const emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit: 100, ...options.emulator });
  const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-data-'));
  const log = options.logLines
    ? createLogger({ level: 'debug', destination: new Writable({ write(chunk, _enc, done) { options.logLines!.push(...String(chunk).split('\n').filter(Boolean)); done(); } }) })
    : process.env.TEST_LOG ? createLogger({ level: process.env.TEST_LOG }) : silentLogger;
  const main = await startEngineServer({ redisUrl: redisServer.url, dataDir, emulatorUrl: emulator.url, log, engine: options.engine, dropboxCallTimeoutMs: options.dropboxCallTimeoutMs, redisCommandTimeoutMs: options.redisCommandTimeoutMs });
  const { engine, redis, url } = main;
  const peers: EngineServer[] = [];

  const api = (path: string, init: RequestInit = {}) => adminFetch(url + path, init);

  const waitForIdle = async (accountId: string, timeoutMs = 20_000) => {
    await waitUntil(async () => {
      try {
        const status = await engine.status(accountId);
        const box = await engine.mailbox.read(accountId);
        return status?.state === 'idle' && box.status === 'idle' && !box.dirty && status.pending === 0;
      } catch {
        return false; // Redis unreachable for a moment (fault tests): keep waiting
      }
    }, timeoutMs, `account ${accountId} to be idle`);
  };

  return {
    redisServer,
    redis,
    emulator,
    engine,
    url,
    dataDir,
    api,
    async linkAccount(accountId, body) {
      const accessToken = `token-${accountId}`;
      if (!emulator.model.hasAccount(accountId)) emulator.model.addAccount(accountId, { accessToken });
      return api(`/accounts/${accountId}`, { method: 'PUT', body: JSON.stringify(body ?? { accessToken }) });
    },
    async linkSynced(accountId, files, clientModified) {
      emulator.model.addAccount(accountId, { accessToken: `token-${accountId}` });
      for (const [path, content] of Object.entries(files)) emulator.model.writeFile(accountId, path, content, clientModified ? { clientModified } : {});
      expect((await api(`/accounts/${accountId}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${accountId}` }) })).status).toBe(200);
      await waitForIdle(accountId);
    },
    async status(accountId) {
      return (await (await api(`/accounts/${accountId}`)).json()) as StatusBody;
    },
    waitForIdle,
    async syncChanges(accountId) {
      const listed = () => emulator.stats.calls(accountId, 'files/list_folder/continue');
      const before = listed();
      await engine.notify([accountId]);
      await waitUntil(() => listed() > before, 10_000, 'the listing');
      await waitForIdle(accountId);
    },
    async startPeer(engineOptions, beforeBoot) {
      const peerLog = process.env.TEST_LOG ? createLogger({ level: process.env.TEST_LOG }).child({ engine: engineOptions.ownerId ?? 'peer' }) : silentLogger;
      const peer = await startEngineServer({ redisUrl: redisServer.url, dataDir, emulatorUrl: emulator.url, log: peerLog, engine: engineOptions, beforeBoot });
      peers.push(peer);
      return peer;
    },
    async close() {
      for (const peer of peers) await peer.close();
      await main.close();
      await emulator.close();
      if (!options.redisServer) await redisServer.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface MirrorFile {
  content: string;
  mtimeMs: number;
}

/**
 * The mirror on disk as display path -> content and mtime; dot-named files (temp, ignored) skipped.
 * Read while the engine works (a test polling for a file), a file can be moved or removed between
 * the folder's listing and its read: it is left out, as a later poll would not see it there either.
 */
export async function readMirror(dataDir: string, accountId: string): Promise<Map<string, MirrorFile>> {
  const root = mirrorFolder(dataDir, accountId);
  const result = new Map<string, MirrorFile>();
  async function walk(dir: string, prefix: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const full = join(dir, name);
      try {
        const info = await stat(full);
        if (info.isDirectory()) await walk(full, `${prefix}/${name}`);
        else result.set(`${prefix}/${name}`, { content: await readFile(full, 'utf8'), mtimeMs: info.mtimeMs });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  }
  await walk(root, '');
  return result;
}

/** What the mirror must hold: every non-ignored file of the emulator's account. */
export function expectedMirror(emulator: RunningEmulator, accountId: string): Map<string, MirrorFile> {
  const expected = new Map<string, MirrorFile>();
  for (const item of emulator.model.listTree(accountId)) {
    if (item.kind !== 'file' || item.pathLower.split('/').some((s) => s.startsWith('.'))) continue;
    expected.set(item.pathDisplay, { content: Buffer.from(item.content ?? new Uint8Array()).toString('utf8'), mtimeMs: Date.parse(item.clientModified!) });
  }
  return expected;
}

/**
 * What "the account converged" means to a user: the mirror equals the Dropbox tree, every post has
 * exactly one entry, and the account is idle with nothing pending and no error.
 */
export async function expectConverged(h: Harness, accountId: string): Promise<void> {
  expect(await readMirror(h.dataDir, accountId)).toEqual(expectedMirror(h.emulator, accountId));
  const posts = h.emulator.model
    .listTree(accountId)
    .filter((i) => i.kind === 'file' && isPostPath(i.pathLower) && !i.pathLower.split('/').some((s) => s.startsWith('.')));
  const entries = await h.engine.entries.list(accountId);
  expect(entries.map((e) => e.path).sort()).toEqual(posts.map((p) => p.pathDisplay).sort());
  expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
  expect(await h.status(accountId)).toMatchObject({ state: 'idle', dirty: false, pending: 0, setAside: 0, lastError: null });
}
