import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startEmulator, type EmulatorOptions, type RunningEmulator } from '../src/dropbox-emulator/server.js';

/**
 * The Dropbox emulator in a process of its own (`node --import tsx bench/emulator-process.ts`), so a
 * figure that times a client against the ideal does not also pay, on the client's event loop, for
 * serving it. The parent drives it over the IPC channel; this one file holds both sides (the client
 * `startEmulatorProcess` and, at the bottom, the child's loop) so their messages are typed once.
 */

const SELF = fileURLToPath(import.meta.url);
const READY_TIMEOUT_MS = 30_000;
/** Seeding 10,000 files takes well under a second; this only catches a child that stopped answering. */
const REQUEST_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 10_000;

/**
 * The files figure 4 syncs: `count` files of about 200 B spread over 100 folders. Generated in the
 * child from one message: seeding must not cost one IPC message per file.
 */
export function seededFile(i: number): { path: string; content: string } {
  return { path: `/folder-${i % 100}/file-${i}.txt`, content: `file ${i} `.repeat(20) };
}

/** What the emulator saw of one account (a plain object: it crosses the IPC channel). */
export interface AccountStatsSnapshot {
  calls: Record<string, number>;
  downloads: number;
  maxDownloadsInFlight: number;
  maxListingsInFlight: number;
}

type Request =
  | { op: 'addAccount'; accountId: string; accessToken: string }
  | { op: 'seedFiles'; accountId: string; count: number }
  | { op: 'setLatency'; ms: number; route?: string }
  | { op: 'stats'; accountId: string }
  | { op: 'cpuMs' };

type ReplyValue = {
  addAccount: null;
  seedFiles: null;
  setLatency: null;
  stats: AccountStatsSnapshot;
  cpuMs: number;
};

type Numbered = Request & { id: number };
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };
type ChildMessage = { ready: string } | Reply;

export interface EmulatorProcess {
  /** `http://127.0.0.1:PORT`, as `RunningEmulator.url`. */
  url: string;
  pid: number;
  addAccount(accountId: string, accessToken: string): Promise<void>;
  /** Writes `count` files (`seededFile(0..count-1)`) into the account. */
  seedFiles(accountId: string, count: number): Promise<void>;
  /** Latency for one route, or for every route when `route` is omitted (`FaultInjector.setLatency`). */
  setLatency(ms: number, route?: string): Promise<void>;
  stats(accountId: string): Promise<AccountStatsSnapshot>;
  /** CPU time (user + system, ms) the emulator process has used so far: what serving costs it. */
  cpuMs(): Promise<number>;
  /** Closes the emulator and waits for the process to exit (killed if it does not in time). */
  close(): Promise<void>;
}

export async function startEmulatorProcess(options: EmulatorOptions = {}): Promise<EmulatorProcess> {
  // The options travel as an argument: they are plain data (no callbacks in EmulatorOptions).
  const child = spawn(process.execPath, ['--import', 'tsx', SELF, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let output = '';
  const collect = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-20_000); };
  child.stdout?.on('data', collect);
  // Passed on as well: the emulator reports unexpected errors there, as it did in process.
  child.stderr?.on('data', (chunk: Buffer) => {
    collect(chunk);
    process.stderr.write(chunk);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const describeExit = () => `the emulator process exited (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`;

  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 1;
  child.on('message', (message: ChildMessage) => {
    if (!('id' in message)) return;
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.ok) waiter.resolve(message.value);
    else waiter.reject(new Error(`emulator process: ${message.error}`));
  });
  child.once('exit', () => {
    for (const waiter of pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(describeExit()));
    }
    pending.clear();
  });

  let url: string;
  try {
    url = await waitForReady(child, describeExit);
  } catch (error) {
    await stop(child, exited);
    throw error;
  }

  const request = <R extends Request>(req: R): Promise<ReplyValue[R['op']]> =>
    new Promise((resolve, reject) => {
      if (!child.connected) return reject(new Error(describeExit()));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the emulator process did not answer ${req.op} within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      child.send({ ...req, id } satisfies Numbered);
    });

  return {
    url,
    pid: child.pid!,
    addAccount: async (accountId, accessToken) => void (await request({ op: 'addAccount', accountId, accessToken })),
    seedFiles: async (accountId, count) => void (await request({ op: 'seedFiles', accountId, count })),
    setLatency: async (ms, route) => void (await request({ op: 'setLatency', ms, route })),
    stats: (accountId) => request({ op: 'stats', accountId }),
    cpuMs: () => request({ op: 'cpuMs' }),
    close: () => stop(child, exited),
  };
}

function waitForReady(child: ChildProcess, describeExit: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`the emulator process was not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    const onMessage = (message: ChildMessage) => {
      if ('ready' in message) finish(undefined, message.ready);
    };
    const onExit = () => finish(new Error(describeExit()));
    const onError = (error: Error) => finish(error);
    function finish(error: Error | undefined, url?: string) {
      clearTimeout(timer);
      child.off('message', onMessage).off('exit', onExit).off('error', onError);
      if (error) reject(error);
      else resolve(url!);
    }
    child.on('message', onMessage).once('exit', onExit).once('error', onError);
  });
}

/** Disconnecting is the child's signal to close (the same path as its parent dying); SIGKILL if it hangs. */
async function stop(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.disconnect();
  else child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), EXIT_TIMEOUT_MS); });
  if (await Promise.race([exited.then(() => false), timedOut])) {
    child.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

// ---- The child ----

function answer(emulator: RunningEmulator, req: Request): ReplyValue[Request['op']] {
  switch (req.op) {
    case 'addAccount':
      emulator.model.addAccount(req.accountId, { accessToken: req.accessToken });
      return null;
    case 'seedFiles':
      for (let i = 0; i < req.count; i++) {
        const { path, content } = seededFile(i);
        emulator.model.writeFile(req.accountId, path, content);
      }
      return null;
    case 'setLatency':
      emulator.faults.setLatency(req.ms, req.route);
      return null;
    case 'stats':
      return {
        calls: emulator.stats.callsByRoute(req.accountId),
        downloads: emulator.stats.downloads(req.accountId),
        maxDownloadsInFlight: emulator.stats.maxDownloadsInFlight(req.accountId),
        maxListingsInFlight: emulator.stats.maxListingsInFlight(req.accountId),
      };
    case 'cpuMs': {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    }
  }
}

async function serveParent(): Promise<void> {
  const send = process.send?.bind(process);
  if (!send) throw new Error('bench/emulator-process.ts is a child process: start it with startEmulatorProcess()');
  let emulator: RunningEmulator | undefined;
  // The parent closing the channel, or dying (the channel closes with it), both end this process:
  // no emulator outlives its benchmark.
  const shutdown = async () => {
    setTimeout(() => process.exit(1), EXIT_TIMEOUT_MS).unref();
    await emulator?.close();
    process.exit(0);
  };
  process.once('disconnect', () => void shutdown());
  if (!process.connected) return shutdown();

  emulator = await startEmulator(JSON.parse(process.argv[2] ?? '{}') as EmulatorOptions);
  process.on('message', (message: Numbered) => {
    let reply: Reply;
    try {
      reply = { id: message.id, ok: true, value: answer(emulator!, message) };
    } catch (error) {
      reply = { id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) };
    }
    if (process.connected) send(reply);
  });
  send({ ready: emulator.url } satisfies ChildMessage);
}

if (process.argv[1] && process.argv[1] === SELF) await serveParent();
