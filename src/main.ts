import { serve } from '@hono/node-server';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { TokenCipher } from './accounts/token-cipher.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { DEMO_ACCOUNT, startDemo, type Demo } from './demo.js';
import { Engine } from './engine/engine.js';
import { createApp } from './http/app.js';
import { serverUrl } from './http/server-url.js';
import { createLogger, type Logger } from './logger.js';
import { startInspection } from './observability/inspector.js';
import { openRedis, openRedisCluster } from './redis/connection.js';
import { EmbeddedRedis } from './redis/embedded-redis.js';
import { probeWrites } from './redis/write-probe.js';
import { mirrorFolder } from './sync/sync-deps.js';

/**
 * What has been started so far, stopped in reverse order if the start fails: an embedded
 * redis-server left running would outlive this process and share its data folder with the next one.
 */
class Started {
  private readonly stops: (() => Promise<unknown>)[] = [];

  add<T>(value: T, stop: (value: T) => Promise<unknown>): T {
    this.stops.push(() => stop(value));
    return value;
  }

  async stopAll(): Promise<void> {
    for (const stop of this.stops.reverse()) await stop().catch(() => undefined);
  }
}

/** How long a shutdown waits for requests in flight before it closes their connections. */
const SHUTDOWN_GRACE_MS = 5_000;

/**
 * SIGTERM, SIGINT and SIGHUP, from the moment the process starts. Before the server listens nothing is
 * owned yet: the start stops at its next step and what it started is stopped. From then on
 * (`drainWith`) a signal runs the graceful shutdown, also while the boot is still restoring accounts
 * (their leases are released, not left to expire). A second signal exits at once.
 */
class Signals {
  /** The first signal received. */
  received: string | undefined;
  private drain: ((signal: string) => void) | undefined;

  /** From now on a signal drains; one received before drains now. */
  drainWith(drain: (signal: string) => void): void {
    this.drain = drain;
    if (this.received) drain(this.received);
  }

  get draining(): boolean {
    return this.received !== undefined && this.drain !== undefined;
  }

  constructor(private readonly log: Logger) {}

  receive(signal: string): void {
    // A hangup often comes twice, a few ms apart (the shell hangs up its jobs, then the kernel the
    // old foreground group): nobody asking twice.
    if (this.received && signal === 'SIGHUP') return;
    if (this.received) {
      // An operator's second Ctrl-C, or a supervisor that will not wait: exit now. The leases not
      // released yet stay until LEASE_TTL_MS; every write was fenced, so nothing else is lost.
      this.log.warn({ signal, first: this.received }, 'second signal: exiting without finishing the shutdown');
      process.exit(1);
    }
    this.received = signal;
    this.drain?.(signal);
  }

  /** Between two steps of the start: a signal before the server listens ends the start here. */
  check(): void {
    if (this.received && !this.drain) throw new StoppedAtStart(this.received);
  }
}

class StoppedAtStart extends Error {
  constructor(readonly signal: string) {
    super(`${signal} before the server listened`);
  }
}

async function main(config: Config): Promise<void> {
  const log = createLogger({ level: config.logLevel });
  const signals = new Signals(log);
  process.on('SIGTERM', () => signals.receive('SIGTERM'));
  process.on('SIGINT', () => signals.receive('SIGINT'));
  // A closed terminal or a dropped SSH session: without a handler Node exits at once, leases held
  // until they expire and the embedded redis-server left running.
  process.on('SIGHUP', () => signals.receive('SIGHUP'));
  // The log's terminal or pipe gone with it: a write then fails (EIO, EPIPE), and unhandled that
  // aborts the process before its shutdown has released anything. The log has nowhere to go; the
  // shutdown goes on.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EIO' && error.code !== 'EPIPE') throw error;
    });
  }
  const started = new Started();
  try {
    await start(config, started, signals, log);
  } catch (error) {
    // The graceful shutdown under way stops everything and exits (a step that failed because of it
    // is no start-up failure).
    if (signals.draining) return;
    await started.stopAll();
    if (error instanceof StoppedAtStart) {
      log.info({ signal: error.signal }, 'stopped');
      process.exit(0);
    }
    throw error;
  }
}

async function start(config: Config, started: Started, signals: Signals, log: Logger): Promise<void> {
  await mkdir(config.dataDir, { recursive: true });
  signals.check();

  const embedded = config.redisUrl || config.redisClusterNodes ? undefined : started.add(await EmbeddedRedis.start({ dir: join(config.dataDir, 'redis') }), (e) => e.stop());
  signals.check();
  if (embedded) log.info({ url: embedded.url, dir: embedded.dir }, 'started an embedded redis-server (set REDIS_URL or REDIS_CLUSTER_NODES to use your own)');
  const redisOptions = { commandTimeoutMs: config.redisCommandTimeoutMs };
  const redis = started.add(
    config.redisClusterNodes ? await openRedisCluster(config.redisClusterNodes, redisOptions) : await openRedis(config.redisUrl ?? embedded!.url, redisOptions),
    async (r) => r.disconnect(),
  );
  redis.on('error', (error: Error) => log.warn({ err: error.message }, 'redis connection error'));
  // Not a refusal to start (Redis may be failing over right now), but said at once: until it takes
  // writes every webhook is answered 503, and only /readyz would say why.
  const refusal = await probeWrites(redis).catch(() => null);
  if (refusal) log.error({ redis: refusal.state, reason: refusal.message }, 'Redis takes no writes: every webhook is answered 503 until it does');
  signals.check();

  const demo: Demo | undefined = config.dropboxAppSecret ? undefined : started.add(await startDemo(config.dataDir, { log }), (d) => d.close());
  signals.check();
  const appSecret = config.dropboxAppSecret ?? demo!.appSecret;
  const hosts = demo ? { api: demo.emulator.url, content: demo.emulator.url } : { api: config.dropboxApiUrl, content: config.dropboxContentUrl };
  const adminToken = config.adminToken ?? randomBytes(24).toString('base64url');
  if (!config.adminToken) process.stdout.write(`ADMIN_TOKEN (generated for this run; set ADMIN_TOKEN to choose one): ${adminToken}\n`);

  // INSPECT=1: the Stately inspector's relay on 127.0.0.1:INSPECT_PORT, every account actor reporting to it.
  const inspection = config.inspect ? started.add(await startInspection({ port: config.inspectPort, log }), (i) => i.close()) : undefined;
  signals.check();
  const engine = new Engine({
    redis,
    dataDir: config.dataDir,
    log,
    dropbox: {
      appKey: config.dropboxAppKey,
      appSecret,
      hosts,
      callTimeoutMs: config.dropboxTimeoutMs,
      authorizeUrl: config.dropboxAuthorizeUrl,
      redirectUrl: config.oauthRedirectUrl,
    },
    tokenCipher: config.tokenEncryptionKey ? new TokenCipher(config.tokenEncryptionKey) : undefined,
    downloadConcurrency: config.downloadConcurrency,
    downloadsPerAccount: config.accountDownloadConcurrency,
    pageLimit: config.listPageLimit,
    leaseTtlMs: config.leaseTtlMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxActiveRuns: config.maxActiveRuns,
    pollIntervalMs: config.pollIntervalMs,
    maxPollsPerSweep: config.maxPollsPerSweep,
    parkedRecheckMs: config.parkedRecheckMs,
    inspect: inspection?.inspect,
  });
  started.add(engine, (e) => e.close());
  // Before the server listens: a webhook for an account still in the old layout would find it not linked.
  await engine.upgradeStoredLayout();
  signals.check();
  let draining = false;
  const closing = new AbortController();
  // One listener per open status stream (up to its limit of 100), all removed as they end.
  setMaxListeners(0, closing.signal);
  const app = createApp({ engine, redis, appSecret, adminToken, log, draining: () => draining, closing: closing.signal });
  const server = await new Promise<Server>((resolve, reject) => {
    const created = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(created as Server));
    (created as Server).once('error', reject);
  });
  /** The status page's streams end now; any other request gets a few seconds to finish. */
  const closeServer = async () => {
    closing.abort();
    server.closeIdleConnections();
    const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
    force.unref();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    clearTimeout(force);
  };
  // A start that fails after this (the boot, the demo's link) ends open status streams the same way.
  started.add(server, closeServer);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const baseUrl = serverUrl(config.host, port);
  log.info({ url: baseUrl, webhook: `${baseUrl}/webhooks/dropbox` }, 'listening');

  let sweeper: NodeJS.Timeout | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    draining = true;
    log.info({ signal }, 'shutting down');
    clearInterval(sweeper);
    await demo?.close();
    await closeServer();
    // Also while the boot below is still restoring accounts: the actors restored so far are
    // stopped and their leases released, and the boot starts no more.
    await engine.close();
    await inspection?.close();
    await redis.quit().catch(() => redis.disconnect());
    await embedded?.stop();
    log.info('stopped');
    process.exit(0);
  };
  // From the moment the server listens, not after the boot: a signal during a long boot would
  // otherwise kill the process with the leases of every account restored so far held until they expire.
  signals.drainWith((signal) => void shutdown(signal));

  const resumed = await engine.boot();
  if (signals.received) return;
  if (resumed) log.info({ resumed }, 'resumed accounts with unfinished work');
  if (demo) {
    await engine.link(DEMO_ACCOUNT, { accessToken: demo.accessToken });
    if (signals.received) return;
    demo.watch(`${baseUrl}/webhooks/dropbox`);
    log.info(
      { dropFilesInto: demo.dropboxFolder, statusPage: `${baseUrl}/`, mirror: mirrorFolder(config.dataDir, DEMO_ACCOUNT), status: `${baseUrl}/accounts/${DEMO_ACCOUNT}`, entries: `${baseUrl}/accounts/${DEMO_ACCOUNT}/entries` },
      'demo: no DROPBOX_APP_SECRET, so the built-in Dropbox emulator serves a local folder (call the URLs with Authorization: Bearer $ADMIN_TOKEN)',
    );
  }

  sweeper = setInterval(() => {
    engine.scheduledSweep(config.sweepIntervalMs).catch((error: unknown) => log.warn({ err: (error as Error).message }, 'sweep failed'));
  }, config.sweepIntervalMs);
  sweeper.unref();
}

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
main(config).catch((error: unknown) => {
  process.stderr.write(`mailroom failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
