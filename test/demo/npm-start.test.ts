import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../support/fixtures.js';
import { processes } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let group: number | undefined;
let dataDir: string | undefined;

afterEach(() => {
  // Whatever a failing run left behind in the group this test started.
  if (group !== undefined && members(group).length > 0) process.kill(-group, 'SIGKILL');
  group = undefined;
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Live processes of a process group (zombies have exited). */
function members(pgid: number): string[] {
  return processes().filter((p) => p.pgid === pgid && p.state !== 'Z').map((p) => `${p.pid} ${p.name}`);
}

// Each test starts whole engine processes (tsx, an embedded redis-server) one after another:
// under a loaded CI machine that outlasts the suite's 30 s default.
describe('npm start in a terminal', { timeout: 90_000 }, () => {
  it('one Ctrl-C while the demo syncs stops it gracefully: one signal (not "second signal: exiting without finishing"), its redis-server still there until the end', async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'mailroom-npm-start-'));
    // Enough files that the engine is busy syncing when the user presses Ctrl-C.
    mkdirSync(join(dataDir, 'dropbox', 'many'), { recursive: true });
    const bytes = Buffer.alloc(20_000, 'x');
    for (let i = 0; i < 1_500; i++) writeFileSync(join(dataDir, 'dropbox', 'many', `f${i}.bin`), Buffer.concat([Buffer.from(String(i)), bytes]));

    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info' };
    for (const name of ['DROPBOX_APP_SECRET', 'DROPBOX_APP_KEY', 'DROPBOX_API_URL', 'DROPBOX_CONTENT_URL', 'REDIS_URL', 'REDIS_CLUSTER_NODES', 'ADMIN_TOKEN']) delete env[name];
    // A terminal runs the command as the foreground process group, and Ctrl-C signals the whole group.
    const npm = spawn('npm', ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    group = npm.pid!;
    let output = '';
    npm.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    npm.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    // 'close': every process writing to its output (npm, the shell, the engine) has exited.
    let closed = false;
    npm.once('close', () => { closed = true; });

    await waitUntil(() => output.includes('"state":"downloading"'), 60_000, 'the demo to be downloading');
    process.kill(-group, 'SIGINT');
    await waitUntil(() => closed, 30_000, 'the demo to stop after one Ctrl-C');

    expect(output).not.toContain('second signal');
    expect(output).toContain('"msg":"stopped"');
    // The terminal's Ctrl-C reaches the whole group: the embedded redis-server must outlive the
    // engine's shutdown (snapshots flushed, leases released), not vanish under it.
    const shutdown = output.slice(output.indexOf('"msg":"shutting down"'));
    expect(shutdown).not.toContain('redis connection error');
    expect(shutdown).not.toContain('snapshot write failed');
    await waitUntil(() => members(group!).length === 0, 10_000, 'every process of `npm start` (the redis-server too) to exit');
  }, 120_000);
});
