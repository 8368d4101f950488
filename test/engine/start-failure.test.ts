import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/** redis-server processes running in `dir` (it changes into its --dir). */
function redisServersIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith('redis-server')) continue;
      if (readlinkSync(`/proc/${entry}/cwd`) === dir) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-start-failure-'));
const leftRunning: number[] = [];
afterAll(() => {
  for (const pid of leftRunning) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start failing after the embedded redis-server started', () => {
  it('exits 1 with the reason and stops that redis-server (the port is taken)', async () => {
    const blocker = createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as { port: number }).port;
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
        env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, REDIS_URL: '', DROPBOX_APP_SECRET: '', LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
      const [code] = await once(child, 'exit');
      expect(stderr).toContain('mailroom failed to start: listen EADDRINUSE');
      expect(code).toBe(1);
    } finally {
      blocker.close();
    }
    // The process waited for its redis-server to exit before it exited itself.
    const running = redisServersIn(join(dataDir, 'redis'));
    leftRunning.push(...running);
    expect(running).toEqual([]);
  }, 60_000);
});
