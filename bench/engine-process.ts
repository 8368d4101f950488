import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/redis/embedded-redis.js';
import { ADMIN_TOKEN, APP_KEY, APP_SECRET, waitUntil } from './lib.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

export type LogLine = { msg?: string; time?: string; accountId?: string; [key: string]: unknown };

/** The engine as `npm start` runs it (`node --import tsx src/main.ts`), its JSON log lines parsed. */
export class EngineProcess {
  private child: ChildProcess | undefined;
  private rest = '';
  spawnedAt = 0;
  onLine: (line: LogLine) => void = () => {};

  private constructor(readonly port: number, private readonly env: Record<string, string>) {}

  static async start(options: { redisUrl: string; dataDir: string; dropboxUrl: string; env?: Record<string, string>; onLine?: (line: LogLine) => void }): Promise<EngineProcess> {
    const engine = new EngineProcess(await freePort(), {
      HOST: '127.0.0.1',
      REDIS_URL: options.redisUrl,
      DATA_DIR: options.dataDir,
      DROPBOX_APP_KEY: APP_KEY,
      DROPBOX_APP_SECRET: APP_SECRET,
      DROPBOX_API_URL: options.dropboxUrl,
      DROPBOX_CONTENT_URL: options.dropboxUrl,
      ADMIN_TOKEN,
      LOG_LEVEL: 'warn',
      ...options.env,
    });
    if (options.onLine) engine.onLine = options.onLine;
    await engine.launch();
    return engine;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resident set size of the engine process, from /proc. */
  rssBytes(): number {
    const status = readFileSync(`/proc/${this.child!.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
  }

  api(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(this.url + path, { ...init, headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json', ...init.headers } });
  }

  async launch(): Promise<void> {
    this.spawnedAt = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { env: { ...process.env, PORT: String(this.port), ...this.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let errors = '';
    child.stderr?.on('data', (chunk: Buffer) => { errors = (errors + chunk.toString()).slice(-4000); });
    child.stdout?.on('data', (chunk: Buffer) => {
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
      if (child.exitCode !== null) throw new Error(`engine exited at start: ${errors}`);
      return fetch(`${this.url}/healthz`).then((r) => r.ok, () => false);
    }, 30_000, 'the engine process to listen', 20);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await once(child, 'exit');
  }
}
