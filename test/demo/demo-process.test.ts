import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EngineProcess, type LogLine } from '../support/engine-process.js';
import { waitUntil } from '../support/fixtures.js';
import { isAlive, processes } from '../support/processes.js';

/**
 * `npm start` as a new user runs it: no DROPBOX_APP_SECRET (the demo: the emulator serves
 * $DATA_DIR/dropbox), no REDIS_URL (an embedded redis-server in $DATA_DIR/redis).
 */
const DEMO_ENV = { DROPBOX_APP_SECRET: '', DROPBOX_APP_KEY: '', DROPBOX_API_URL: '', DROPBOX_CONTENT_URL: '', REDIS_URL: '' };

type Entry = { id: string; path: string; title: string; created: number };

const dataDirs: string[] = [];
const engines: EngineProcess[] = [];
const redisPids = new Set<number>();

afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.kill('SIGTERM');
  // Whatever a failing run left behind: the redis-servers these tests started, by pid.
  for (const pid of redisPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  redisPids.clear();
  for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The redis-server processes the engine process started (its children). */
function redisChildren(parentPid: number): number[] {
  return processes().filter((p) => p.name === 'redis-server' && p.ppid === parentPid).map((p) => p.pid);
}

async function startDemo(dataDir: string, onLine?: (line: LogLine) => void): Promise<EngineProcess> {
  const engine = await EngineProcess.start({ redisUrl: '', dataDir, dropboxUrl: '', env: DEMO_ENV, onLine });
  engines.push(engine);
  for (const pid of redisChildren(engine.childProcess!.pid!)) redisPids.add(pid);
  return engine;
}

async function entries(engine: EngineProcess): Promise<Entry[]> {
  const response = await engine.api('/accounts/dbid:demo/entries');
  if (response.status !== 200) return [];
  return ((await response.json()) as { entries: Entry[] }).entries;
}

function newDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-demo-'));
  dataDirs.push(dir);
  return dir;
}

// Each test starts whole engine processes (tsx, an embedded redis-server) one after another:
// under a loaded CI machine that outlasts the suite's 30 s default.
describe('the demo (npm start without Dropbox credentials)', { timeout: 90_000 }, () => {
  it('a restart with the same DATA_DIR keeps every entry and mirrored file: nothing is deleted and made again', async () => {
    const dataDir = newDataDir();
    const first = await startDemo(dataDir);
    await waitUntil(async () => (await entries(first)).some((e) => e.path === '/Posts/Hello world.md'), 20_000, 'the welcome post as an entry');
    const before = (await entries(first)).find((e) => e.path === '/Posts/Hello world.md')!;
    await first.kill('SIGTERM');

    // While it is down, the user adds a post.
    writeFileSync(join(dataDir, 'dropbox', 'Posts', 'Written while stopped.md'), '# Written while stopped\n');
    const removals: LogLine[] = [];
    const second = await startDemo(dataDir, (line) => {
      if (line.msg === 'applied' && typeof line.removed === 'number' && line.removed > 0) removals.push(line);
    });
    await waitUntil(async () => (await entries(second)).some((e) => e.path === '/Posts/Written while stopped.md'), 20_000, 'the post written while stopped');
    const after = (await entries(second)).find((e) => e.path === '/Posts/Hello world.md');
    expect(after).toMatchObject({ id: before.id, created: before.created });
    expect(removals).toEqual([]);
    expect(existsSync(join(dataDir, 'mirrors', 'dbid:demo', 'Posts', 'Hello world.md'))).toBe(true);
  });

  it('after the engine crashes, the next start on the same DATA_DIR leaves no orphaned redis-server of the crashed one running', async () => {
    const dataDir = newDataDir();
    const first = await startDemo(dataDir);
    const [orphan] = redisChildren(first.childProcess!.pid!);
    expect(orphan).toBeDefined();
    await first.kill('SIGKILL');
    expect(isAlive(orphan!)).toBe(true); // a crash cannot stop its child itself

    const second = await startDemo(dataDir);
    await waitUntil(() => !isAlive(orphan!), 10_000, 'the crashed engine\'s redis-server to be stopped');
    const [own] = redisChildren(second.childProcess!.pid!);
    expect(own).toBeDefined();
    // The data the crashed one's server flushed is there (the account resumes once its lease expires).
    await waitUntil(async () => (await second.api('/accounts/dbid:demo')).status === 200, 20_000, 'the demo account, linked');
    engines.splice(engines.indexOf(second), 1);
    await second.kill('SIGTERM');
    await waitUntil(() => !isAlive(own!), 10_000, 'its redis-server to stop with it');
  });

  it('renaming a post, moving it into a subfolder or renaming its folder keeps its entry (same id, same created), as a move on Dropbox does', async () => {
    const dataDir = newDataDir();
    const engine = await startDemo(dataDir);
    const folder = join(dataDir, 'dropbox');
    const entryAt = async (path: string) => (await entries(engine)).find((e) => e.path === path);
    await waitUntil(async () => (await entryAt('/Posts/Hello world.md')) !== undefined, 20_000, 'the welcome post as an entry');
    const original = (await entryAt('/Posts/Hello world.md'))!;

    renameSync(join(folder, 'Posts', 'Hello world.md'), join(folder, 'Posts', 'Hello again.md'));
    await waitUntil(async () => (await entryAt('/Posts/Hello again.md')) !== undefined, 20_000, 'the renamed post');
    expect(await entryAt('/Posts/Hello again.md')).toMatchObject({ id: original.id, created: original.created });

    mkdirSync(join(folder, 'Posts', '2026'));
    renameSync(join(folder, 'Posts', 'Hello again.md'), join(folder, 'Posts', '2026', 'Hello again.md'));
    await waitUntil(async () => (await entryAt('/Posts/2026/Hello again.md')) !== undefined, 20_000, 'the post moved into a subfolder');
    expect(await entryAt('/Posts/2026/Hello again.md')).toMatchObject({ id: original.id, created: original.created });

    renameSync(join(folder, 'Posts'), join(folder, 'Blog'));
    // The entry arrives at its new path as the move is placed, a moment before the file leaves
    // staging: both are waited for.
    const moved = join(dataDir, 'mirrors', 'dbid:demo', 'Blog', '2026', 'Hello again.md');
    await waitUntil(async () => (await entryAt('/Blog/2026/Hello again.md')) !== undefined && existsSync(moved), 20_000, 'the post in its renamed folder');
    expect(await entries(engine)).toEqual([expect.objectContaining({ path: '/Blog/2026/Hello again.md', id: original.id, created: original.created })]);
    expect(readdirSync(join(dataDir, 'mirrors', 'dbid:demo'))).toEqual(['Blog']);
  });

  it('a second demo started on a DATA_DIR a running one uses refuses to start, and leaves the running one and its redis-server alone', async () => {
    const dataDir = newDataDir();
    const first = await startDemo(dataDir);
    const [redisPid] = redisChildren(first.childProcess!.pid!);
    await waitUntil(async () => (await entries(first)).length > 0, 20_000, 'the welcome post as an entry');

    const refused = await startDemo(dataDir).then(() => undefined, (error: Error) => error);
    expect(refused?.message).toMatch(/in use by another/);
    expect(isAlive(redisPid!)).toBe(true);
    expect((await first.api('/accounts/dbid:demo')).status).toBe(200);
  });

  it('SIGHUP (a closed terminal, a dropped SSH session) shuts down as SIGTERM does: exit 0, the embedded redis-server stopped with it', async () => {
    const dataDir = newDataDir();
    const lines: LogLine[] = [];
    const engine = await startDemo(dataDir, (line) => lines.push(line));
    await waitUntil(async () => (await entries(engine)).length > 0, 20_000, 'the welcome post as an entry');
    const child = engine.childProcess!;
    const [redisPid] = redisChildren(child.pid!);
    expect(isAlive(redisPid!)).toBe(true);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await engine.kill('SIGHUP');
    expect(await exited).toBe(0);
    expect(lines.some((line) => line.msg === 'shutting down' && line.signal === 'SIGHUP')).toBe(true);
    await waitUntil(async () => !isAlive(redisPid!), 10_000, 'the embedded redis-server to stop');
  });

  it('a hangup as a terminal gives it, the log\'s pipe gone and the signal twice, still shuts down: exit 0, the redis-server stopped', async () => {
    const dataDir = newDataDir();
    const engine = await startDemo(dataDir);
    await waitUntil(async () => (await entries(engine)).length > 0, 20_000, 'the welcome post as an entry');
    const child = engine.childProcess!;
    const [redisPid] = redisChildren(child.pid!);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // The terminal closed: every line the shutdown logs now fails to be written (EPIPE here, EIO on a tty).
    child.stdout!.destroy();
    child.kill('SIGHUP');
    child.kill('SIGHUP'); // the shell's hangup, then the kernel's: a second signal that is no operator's
    expect(await exited).toBe(0);
    await waitUntil(async () => !isAlive(redisPid!), 10_000, 'the embedded redis-server to stop');
  });

  it('a folder the user emptied stays empty after a restart: the welcome post is written only into a new folder', async () => {
    const dataDir = newDataDir();
    const first = await startDemo(dataDir);
    await waitUntil(async () => (await entries(first)).length > 0, 20_000, 'the welcome post as an entry');
    rmSync(join(dataDir, 'dropbox', 'Posts'), { recursive: true });
    await waitUntil(async () => (await entries(first)).length === 0 && !existsSync(join(dataDir, 'mirrors', 'dbid:demo', 'Posts')), 20_000, 'the deletion synced');
    await first.kill('SIGTERM');

    const restartedAt = Date.now();
    const second = await startDemo(dataDir);
    await waitUntil(async () => {
      const status = (await (await second.api('/accounts/dbid:demo')).json()) as { state: string; lastSyncedAt?: number | string | null };
      return status.state === 'idle' && status.lastSyncedAt != null && new Date(status.lastSyncedAt).getTime() >= restartedAt;
    }, 20_000, 'a sync after the restart');
    expect(readdirSync(join(dataDir, 'dropbox'))).toEqual([]);
    expect(await entries(second)).toEqual([]);
  });
});
