import { open, rename, rm, utimes, mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/**
 * The mtime a synced file gets: Dropbox's client_modified, clamped to now (as Maestral does), so a
 * client with a clock in the future cannot make a file look newer than anything written later.
 */
export function mtimeFor(clientModified: string, now: number): Date {
  const parsed = Date.parse(clientModified);
  return new Date(Number.isFinite(parsed) ? Math.min(parsed, now) : now);
}

/**
 * Writes `bytes` at `target` so a reader sees either the old file or the whole new one: a temp file
 * in the same folder (same file system, so the rename is atomic), fsync, rename, then mtime and
 * atime. `fs.utimes` sets both on Linux exactly as on macOS; the temp name starts with a dot, so the
 * engine's ignore rules never pick up a leftover. `beforeRename` is where the caller checks, as late
 * as possible, that it may still write (fenced ownership, the rev still wanted).
 */
export async function writeFileAtomically(
  target: string,
  bytes: Uint8Array,
  mtime: Date,
  /** Asked after the temp file is durable, right before the rename: false leaves the target untouched. */
  beforeRename: () => Promise<boolean> = async () => true,
): Promise<boolean> {
  const folder = dirname(target);
  await mkdir(folder, { recursive: true });
  const temp = join(folder, `.${basename(target).slice(0, 180)}.${randomBytes(6).toString('hex')}.mailroom-tmp`);
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    if (!(await beforeRename())) {
      await rm(temp, { force: true });
      return false;
    }
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await utimes(target, mtime, mtime);
  return true;
}
