import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/redis/embedded-redis.js';
import { ADMIN_TOKEN, APP_KEY, APP_SECRET, waitUntil } from './fixtures.js';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

export type LogLine = { msg?: string; time?: string; accountId?: string; [key: string]: unknown };

/**
 * The engine as a real process (`node --import tsx src/main.ts`, what `npm start` runs), so a test
 * can SIGKILL it mid-sync and start another one on the same Redis and data folder, and a benchmark
 * can time its restart from its log lines. Used by the tests and by bench/.
 */
export class EngineProcess {
  private child: ChildProcess | undefined;
  private rest = '';
  /** Its stdout and stderr (the tail). */
  output = '';
  /** When the current child was spawned (epoch ms). */
  spawnedAt = 0;
  /** Called with every JSON log line. */
  onLine: (line: LogLine) => void = () => {};

  private constructor(readonly port: number, private readonly env: Record<string, string>) {}

  static async start(options: { redisUrl: string; dataDir: string; dropboxUrl: string; env?: Record<string, string>; onLine?: (line: LogLine) => void }): Promise<EngineProcess> {
    const port = await freePort();
    const engine = new EngineProcess(port, {
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: options.redisUrl,
      DATA_DIR: options.dataDir,
      DROPBOX_APP_KEY: APP_KEY,
      DROPBOX_APP_SECRET: APP_SECRET,
      DROPBOX_API_URL: options.dropboxUrl,
      DROPBOX_CONTENT_URL: options.dropboxUrl,
      ADMIN_TOKEN,
      LOG_LEVEL: 'info',
      // As `npm start` sets it: the pool is sized from the environment before any module runs.
      UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '16',
      ...options.env,
    });
    if (options.onLine) engine.onLine = options.onLine;
    await engine.launch();
    return engine;
  }

  /** The running child (for signals a test sends itself: SIGSTOP, SIGCONT, SIGTERM). */
  get childProcess(): ChildProcess | undefined {
    return this.child;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Resident set size of the engine process, from /proc (Linux). */
  rssBytes(): number {
    const status = readFileSync(`/proc/${this.child!.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
  }

  api(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(this.url + path, { ...init, headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json', ...init.headers } });
  }

  async launch(): Promise<void> {
    this.spawnedAt = Date.now();
    this.rest = '';
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { env: { ...process.env, ...this.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const collect = (chunk: Buffer) => { this.output = (this.output + chunk.toString()).slice(-200_000); };
    child.stderr?.on('data', collect);
    child.stdout?.on('data', (chunk: Buffer) => {
      collect(chunk);
      const lines = (this.rest + chunk.toString()).split('\n');
      this.rest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        try {
          this.onLine(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
    });
    await waitUntil(async () => {
      if (child.exitCode !== null) throw new Error(`engine exited at start:\n${this.output}`);
      return fetch(`${this.url}/healthz`).then((r) => r.ok, () => false);
    }, 30_000, 'the engine process to listen');
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await once(child, 'exit');
  }
}
