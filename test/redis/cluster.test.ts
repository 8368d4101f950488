import { serve } from '@hono/node-server';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { Engine } from '../../src/engine/engine.js';
import { createApp } from '../../src/http/app.js';
import { silentLogger } from '../../src/logger.js';
import { openRedisCluster } from '../../src/redis/connection.js';
import { accountKeys, LINKED_ACCOUNTS_KEY } from '../../src/redis/keys.js';
import { isRedisUnavailable } from '../../src/redis/redis-errors.js';
import { freePort } from '../support/redis-server.js';
import { APP_KEY, APP_SECRET, ADMIN_TOKEN, expectedMirror, readMirror, waitUntil } from '../support/sync-harness.js';

/**
 * The engine on a real Redis Cluster: three masters, no replicas, several accounts whose keys land
 * on different masters. Every Lua script must route to one node (all its keys share the account's
 * hash tag), the wake channel must work through cluster pub/sub, and the burst scenario (a folder
 * edited while it downloads, with a webhook burst) must end with exact mirrors.
 */

const run = promisify(execFile);

/** Three cluster-enabled redis-servers joined into one cluster with `redis-cli --cluster create`. */
class TestCluster {
  private constructor(readonly dir: string, readonly ports: number[], private readonly children: ChildProcess[]) {}

  static async start(size = 3): Promise<TestCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-cluster-'));
    const ports: number[] = [];
    const children: ChildProcess[] = [];
    const cluster = new TestCluster(dir, ports, children);
    try {
      for (let i = 0; i < size; i++) {
        // The bus port defaults to port + 10000, which overflows for ephemeral ports: pick it too.
        const [port, busPort] = [await freePort(), await freePort()];
        ports.push(port);
        const child = spawn('redis-server', [
          '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--dir', dir,
          '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '5000',
          '--appendonly', 'no', '--save', '', '--loglevel', 'warning',
        ], { stdio: 'ignore' });
        children.push(child);
      }
      for (const port of ports) await waitUntil(() => cli(port, 'ping').then((out) => out.trim() === 'PONG', () => false), 10_000, `redis-server on ${port}`);
      await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 });
      for (const port of ports) {
        await waitUntil(async () => {
          const info = await cli(port, 'cluster', 'info');
          return info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${size}`);
        }, 15_000, `cluster_state:ok on ${port}`);
      }
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  get nodes(): { host: string; port: number }[] {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }));
  }

  /** SIGKILLs the node listening on `port`. */
  async kill(port: number): Promise<void> {
    await killChild(this.children[this.ports.indexOf(port)]);
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map(killChild));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function killChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

async function cli(port: number, ...args: string[]): Promise<string> {
  return (await run('redis-cli', ['-p', String(port), ...args], { timeout: 5_000 })).stdout;
}

let cluster: TestCluster;
let redis: Cluster;
let emulator: RunningEmulator;
let engine: Engine;
let server: Server;
let url: string;
let dataDir: string;

function newEngine(dir: string, ownerId: string): Engine {
  return new Engine({
    redis,
    dataDir: dir,
    log: silentLogger,
    dropbox: { appKey: APP_KEY, appSecret: APP_SECRET, hosts: { api: emulator.url, content: emulator.url }, callTimeoutMs: 2_000 },
    downloadConcurrency: 8,
    downloadsPerAccount: 4,
    pageLimit: 100,
    retryBaseDelayMs: 10,
    ownerId,
  });
}

beforeAll(async () => {
  cluster = await TestCluster.start();
  redis = await openRedisCluster(cluster.nodes);
  emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit: 100 });
  dataDir = mkdtempSync(join(tmpdir(), 'mailroom-data-'));
  engine = newEngine(dataDir, 'cluster-a');
  await engine.boot();
  const app = createApp({ engine, redis, appSecret: APP_SECRET, adminToken: ADMIN_TOKEN, log: silentLogger });
  server = await new Promise<Server>((resolve) => {
    const created = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 40_000);

afterAll(async () => {
  await engine?.close();
  if (server) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections?.();
  }
  redis?.disconnect();
  await emulator?.close();
  await cluster?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const accounts = ['dbid:cluster-1', 'dbid:cluster-2', 'dbid:cluster-3', 'dbid:cluster-4', 'dbid:cluster-5'];
const post = (n: number, version = 1) => `# Post ${n} v${version}\n\nBody of post ${n}, version ${version}.\n`;
const name = (n: number) => `/posts/${String(n).padStart(3, '0')}.md`;

async function waitForIdle(accountId: string, timeoutMs = 20_000): Promise<void> {
  await waitUntil(async () => {
    const status = await engine.status(accountId);
    const box = await engine.mailbox.read(accountId);
    return status?.state === 'idle' && box.status === 'idle' && !box.dirty && status.pending === 0;
  }, timeoutMs, `account ${accountId} to be idle`);
}

async function link(accountId: string): Promise<number> {
  const res = await fetch(`${url}/accounts/${accountId}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ accessToken: `token-${accountId}` }),
  });
  return res.status;
}

describe('the engine on a 3-master Redis Cluster', () => {
  it('syncs several accounts spread over the masters through an edit burst mid-download', async () => {
    const model = emulator.model;
    expect((await fetch(`${url}/readyz`)).status).toBe(200); // PING through the cluster client

    // Phase 1: every account gets a folder and is linked.
    for (const id of accounts) {
      model.addAccount(id, { accessToken: `token-${id}` });
      for (let n = 0; n < 40; n++) model.writeFile(id, name(n), post(n));
      for (let n = 0; n < 5; n++) model.writeFile(id, `/assets/img-${n}.bin`, `binary ${n}`);
    }
    expect(await Promise.all(accounts.map(link))).toEqual(accounts.map(() => 200));
    await Promise.all(accounts.map((id) => waitForIdle(id)));
    expect(await engine.accounts.linkedIds()).toEqual([...accounts].sort()); // SADD/SSCAN mr:accounts

    // The accounts' keys really are spread: at least two masters hold some, each account on one.
    const holders = new Map<string, Set<number>>();
    for (const node of redis.nodes('master')) {
      for (const key of await node.keys('mr:{*')) {
        const id = /^mr:\{([^}]+)\}/.exec(key)![1]!;
        if (!holders.has(id)) holders.set(id, new Set());
        holders.get(id)!.add(node.options.port!);
      }
    }
    expect([...holders.keys()].sort()).toEqual([...accounts].sort());
    for (const ports of holders.values()) expect(ports.size).toBe(1);
    expect(new Set([...holders.values()].map((p) => [...p][0])).size).toBeGreaterThanOrEqual(2);
    expect(await redis.scard(LINKED_ACCOUNTS_KEY)).toBe(accounts.length);

    const before = new Map<string, Map<string, string>>();
    for (const id of accounts) before.set(id, new Map((await engine.entries.list(id)).map((e) => [e.path, e.id])));

    // Phase 2: new files, slow downloads, then edits, deletes, renames and a webhook burst mid-download.
    for (const id of accounts) for (let n = 40; n < 70; n++) model.writeFile(id, name(n), post(n));
    emulator.faults.setLatency(80, 'files/download'); // 150 files over 8 slots: ~1.5 s of downloading
    emulator.stats.resetStats();
    const webhook = () => sendWebhook({ url: `${url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts, attempts: 1 });
    expect((await webhook()).status).toBe(200);
    await waitUntil(() => accounts.every((id) => engine.host.actor(id)?.getSnapshot().value === 'downloading'), 10_000, 'every account to be downloading');

    for (const id of accounts) {
      for (let n = 0; n < 5; n++) model.writeFile(id, name(n), post(n, 2)); // edits
      for (let n = 5; n < 10; n++) model.remove(id, name(n)); // deletes
      for (let n = 10; n < 15; n++) model.move(id, name(n), `/renamed/Post ${n}.md`); // renames
      model.remove(id, '/assets'); // a whole folder
      model.writeFile(id, name(65), post(65, 2)); // an edit of a file still queued
    }
    const deliveries = await Promise.all(Array.from({ length: 20 }, webhook));
    expect(deliveries.every((d) => d.status === 200)).toBe(true);
    // The burst really landed mid-download (for at least most accounts; downloads share 8 slots).
    expect(accounts.filter((id) => engine.host.actor(id)?.getSnapshot().value === 'downloading').length).toBeGreaterThanOrEqual(3);
    emulator.faults.setLatency(0, 'files/download');

    await Promise.all(accounts.map((id) => waitForIdle(id, 30_000)));
    for (const id of accounts) {
      expect(await readMirror(dataDir, id)).toEqual(expectedMirror(emulator, id));
      const entries = await engine.entries.list(id);
      const posts = model.listTree(id).filter((i) => i.kind === 'file' && i.pathLower.endsWith('.md'));
      expect(entries.map((e) => e.path).sort()).toEqual(posts.map((p) => p.pathDisplay).sort());
      expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
      const byPath = new Map(entries.map((e) => [e.path, e]));
      expect(byPath.get(name(2))?.title).toBe('Post 2 v2');
      expect(byPath.get(name(65))?.title).toBe('Post 65 v2');
      for (let n = 10; n < 15; n++) expect(byPath.get(`/renamed/Post ${n}.md`)?.id).toBe(before.get(id)!.get(name(n)));
      expect(emulator.stats.maxListingsInFlight(id)).toBe(1);
      expect(await engine.status(id)).toMatchObject({ state: 'idle', lastError: null });
    }
    await engine.sweep(); // SSCAN + per-account reads on the cluster: must not throw
  }, 60_000);

  it('delivers a wake from another process through cluster pub/sub', async () => {
    // A second engine (another process) on the same cluster: it cannot take the lease the first
    // engine holds, so it publishes the wake on mr:wake; the first engine's subscriber gets it.
    const otherDir = mkdtempSync(join(tmpdir(), 'mailroom-data-'));
    const other = newEngine(otherDir, 'cluster-b');
    try {
      await other.boot();
      const id = accounts[0]!;
      expect(engine.host.actor(id)?.getSnapshot().value).toBe('idle'); // held by the first engine
      emulator.model.writeFile(id, '/posts/woken.md', '# Woken through pub/sub\n');
      expect(await other.notify([id])).toEqual({ [id]: 'wake' });
      await waitUntil(async () => (await readMirror(dataDir, id)).has('/posts/woken.md'), 10_000, 'the wake to reach the owner');
      await waitForIdle(id);
      expect(other.host.actor(id)).toBeUndefined();
      expect(await readMirror(dataDir, id)).toEqual(expectedMirror(emulator, id));
    } finally {
      await other.close();
      rmSync(otherDir, { recursive: true, force: true });
    }
  }, 30_000);

  it('fails fast, never hangs, when a master dies (commands for its slots, and for the others)', async () => {
    // ioredis#1604 reports cluster commands that never get their commandTimeout during a partition.
    // A client with a short deadline probes keys on every master while one of them is dead.
    const probe = await openRedisCluster(cluster.nodes, { commandTimeoutMs: 500 });
    try {
      const portOf = new Map<string, number>();
      for (const node of probe.nodes('master')) for (const key of await node.keys('mr:{*}:creds')) portOf.set(/^mr:\{([^}]+)\}/.exec(key)![1]!, node.options.port!);
      const victim = portOf.get(accounts[0]!)!;
      await cluster.kill(victim);
      const outcomes: string[] = [];
      const until = Date.now() + 7_000; // past cluster-node-timeout (5 s): the cluster turns to fail
      while (Date.now() < until) {
        await Promise.all(accounts.map(async (id) => {
          const started = Date.now();
          const outcome = await probe.hgetall(accountKeys(id).mailbox).then(() => 'ok', (error: unknown) => {
            expect(isRedisUnavailable(error), String(error)).toBe(true); // 503 / redis backoff, not a 500
            return 'unavailable';
          });
          expect(Date.now() - started, `${id}: ${outcome}`).toBeLessThan(2_500);
          outcomes.push(`${portOf.get(id) === victim ? 'dead' : 'live'}:${outcome}`);
        }));
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(outcomes).toContain('dead:unavailable');
      expect(outcomes).not.toContain('dead:ok');
      const started = Date.now();
      expect((await fetch(`${url}/readyz`)).status).toBeGreaterThanOrEqual(200); // answers, whatever it says
      expect(Date.now() - started).toBeLessThan(6_000);
    } finally {
      probe.disconnect();
    }
  }, 30_000);
});
