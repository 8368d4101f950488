import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A free TCP port on loopback, found by binding port 0 and releasing it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('could not find a free port');
  server.close();
  await once(server, 'close');
  return address.port;
}

export class RedisServerError extends Error {
  constructor(message: string) {
    super(`${message}. Is redis-server installed (Debian: apt-get install redis-server)? Or set REDIS_URL.`);
    this.name = 'RedisServerError';
  }
}

export interface EmbeddedRedisOptions {
  /** Data folder (the append-only file lives here). */
  dir: string;
  port?: number;
  /** `always` for fault tests (a SIGKILL loses nothing acknowledged), `everysec` otherwise. */
  appendfsync?: 'always' | 'everysec';
}

/**
 * A redis-server child process on loopback with append-only persistence: used by `npm start` when
 * REDIS_URL is unset, and by the tests, which kill and restart it for fault injection.
 */
export class EmbeddedRedis {
  private child: ChildProcess | undefined;
  /** Stops the child when this process exits without stopping it (an uncaught error, process.exit). */
  private readonly stopOnExit = () => this.child?.kill('SIGTERM');

  private constructor(readonly dir: string, readonly port: number, private readonly appendfsync: string) {}

  static async start(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
    mkdirSync(options.dir, { recursive: true });
    // A process killed outright (SIGKILL, OOM) cannot stop its redis-server: it keeps running on
    // its own, and a second one started on the same append-only file would write it too.
    await stopLeftOver(options.dir);
    const redis = new EmbeddedRedis(options.dir, options.port ?? (await freePort()), options.appendfsync ?? 'everysec');
    await redis.launch();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes',
      '--appendfsync', this.appendfsync, '--save', '', '--loglevel', 'warning', '--maxmemory-policy', 'noeviction'];
    // Its own process group: a terminal's Ctrl-C signals the whole foreground group, and a
    // redis-server stopping with the engine would vanish under its graceful shutdown (snapshots,
    // leases). The engine stops it last; a killed engine's is stopped by the next start (above).
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    process.on('exit', this.stopOnExit);
    child.once('exit', () => process.off('exit', this.stopOnExit));
    let output = '';
    const collect = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-2000); };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const spawnError = new Promise<never>((_, reject) => child.once('error', (e) => reject(new RedisServerError(`could not start redis-server: ${e.message}`))));
    await Promise.race([waitForPort(this.port, child, () => output), spawnError]);
    writeFileSync(stateFile(this.dir), JSON.stringify({ pid: child.pid, port: this.port }));
  }

  /** SIGKILL (with appendfsync always nothing acknowledged is lost). */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /** SIGTERM: redis-server flushes the append-only file and exits. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

/** Where the running server's pid and port are kept, for the next start to find one left over. */
function stateFile(dir: string): string {
  return join(dir, 'embedded-redis.json');
}

/**
 * Stops a redis-server a killed process left running on `dir`: the one named in its state file, if
 * it still answers on that port and serves this very folder (a port reused by another server is left
 * alone). SHUTDOWN flushes the append-only file before the server exits.
 */
async function stopLeftOver(dir: string): Promise<void> {
  let port: number;
  try {
    port = (JSON.parse(readFileSync(stateFile(dir), 'utf8')) as { port: number }).port;
  } catch {
    return;
  }
  if (!Number.isInteger(port) || port <= 0 || port > 65_535) return;
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2_000, commandTimeout: 5_000 });
  client.on('error', () => undefined);
  let inUse = false;
  try {
    await client.connect();
    const [, served] = (await client.config('GET', 'dir')) as [string, string];
    if (realpathSync(served) !== realpathSync(dir)) return;
    // Connected clients besides this one: a running engine uses it (a second `npm start` on the
    // same DATA_DIR), not a killed one's leftover. Stopping it would break that engine.
    const clients = String(await client.call('CLIENT', 'LIST')).split('\n').filter((line) => line.trim() !== '');
    if (clients.length > 1) inUse = true;
    else await client.call('SHUTDOWN').catch(() => undefined); // the connection closes as it exits
  } catch {
    return; // nothing there, or not a redis-server we can ask
  } finally {
    client.disconnect();
  }
  if (inUse) throw new Error(`${dir} is in use by another running process (its redis-server answers on port ${port}): is another mailroom running with this DATA_DIR?`);
  const deadline = Date.now() + 10_000;
  while (await portOpen(port)) {
    if (Date.now() > deadline) throw new RedisServerError(`a redis-server left running on ${dir} (port ${port}) did not stop`);
    await new Promise((r) => setTimeout(r, 20));
  }
  rmSync(stateFile(dir), { force: true });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.end(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new RedisServerError(`redis-server exited at start: ${output().trim()}`);
    if (await portOpen(port)) return;
    if (Date.now() > deadline) throw new RedisServerError(`redis-server did not listen on port ${port}: ${output().trim()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
