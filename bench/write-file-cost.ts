/**
 * Side check behind `src/sync/write-file.ts` (not one of the issue's figures, not in `npm run bench`):
 * the main thread's CPU per atomically written file, the engine's write (fs callbacks) against the
 * same steps through fs/promises' FileHandle, which it used before. 3,000 files of 200 bytes, 16 at
 * a time, alternating twice:
 *   UV_THREADPOOL_SIZE=16 npx tsx bench/write-file-cost.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomically } from '../src/sync/write-file.js';
import { mainThreadCpuUs } from './lib.js';

function cpuUs(): number {
  const us = mainThreadCpuUs();
  if (us === null) throw new Error('this side check reads the main thread\'s CPU from /proc (Linux only)');
  return us;
}

/** The engine's write as it was: the same steps through a FileHandle. */
async function writeWithFileHandle(target: string, bytes: Uint8Array, mtime: Date): Promise<void> {
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.mailroom-tmp`);
  const handle = await open(temp, 'wx', 0o644);
  await handle.writeFile(bytes);
  await handle.utimes(mtime, mtime);
  await handle.sync();
  await handle.close();
  await rename(temp, target);
}

const FILES = 3_000;
const LANES = 16;
const bytes = Buffer.alloc(200, 'x');
const mtime = new Date('2024-03-01T10:00:00Z');
const sides = { 'fs callbacks (engine)': (t: string) => writeFileAtomically(t, bytes, mtime), 'FileHandle (before)': (t: string) => writeWithFileHandle(t, bytes, mtime) };
for (let round = 0; round < 2; round++) {
  for (const [name, write] of Object.entries(sides)) {
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-write-cost-'));
    const cpu = cpuUs();
    const start = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: LANES }, async () => {
      while (next < FILES) await write(join(dir, `f${next++}.txt`));
    }));
    const wallUs = (performance.now() - start) * 1000;
    console.log(`${name.padEnd(22)} main-thread CPU ${((cpuUs() - cpu) / FILES).toFixed(0)} µs/file, wall ${(wallUs / FILES).toFixed(0)} µs/file`);
    rmSync(dir, { recursive: true, force: true });
  }
}
