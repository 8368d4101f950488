import { close, fsync, futimes, open, rename, write } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

// The callback API, promisified, rather than fs/promises: through a FileHandle the same steps cost
// the main thread a fifth more CPU per written file (bench/write-file-cost.ts: 103-157 µs against
// 80-123 µs in alternating rounds), and every download pays it.
const openFile = promisify(open);
const writeAt = promisify(write);
const setTimes = promisify(futimes);
const syncFile = promisify(fsync);
const closeFile = promisify(close);
const renameFile = promisify(rename);

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
 * in the same folder (same file system, so the rename is atomic) with its mtime and atime already
 * set, fsync, rename. `fs.utimes` sets both times on Linux exactly as on macOS; the temp name starts
 * with a dot, so the engine's ignore rules never pick up a leftover. `beforeRename` is where the
 * caller checks, as late as possible, that it may still write (fenced ownership, the rev still
 * wanted).
 *
 * Every file-system call here waits its turn in libuv's thread pool (4 threads by default, shared by
 * every download lane), so each call saved per file counts: the folder is created only when the
 * open says it is missing, and the times are set on the open handle.
 */
export async function writeFileAtomically(
  target: string,
  bytes: Uint8Array,
  mtime: Date,
  /** Asked after the temp file is durable, right before the rename: false leaves the target untouched. */
  beforeRename: () => Promise<boolean> = async () => true,
): Promise<boolean> {
  const folder = dirname(target);
  // Not derived from the target's name: a name within the file system's 255 bytes would be past
  // them with a prefix and a suffix added (80 CJK characters are 240 bytes).
  const temp = join(folder, `.${randomBytes(6).toString('hex')}.mailroom-tmp`);
  const fd = await openCreatingFolder(temp, folder);
  try {
    await writeFully(fd, bytes);
    // Before the fsync: the times are then as durable as the bytes, and the file never appears at
    // `target` with the time of its download instead of client_modified.
    await setTimes(fd, mtime, mtime);
    await syncFile(fd);
  } catch (error) {
    await closeFile(fd);
    await rm(temp, { force: true });
    throw error;
  }
  try {
    // The bytes are durable already; closing while the caller checks takes the close off the path.
    const [, allowed] = await Promise.all([closeFile(fd), beforeRename()]);
    if (!allowed) {
      await rm(temp, { force: true });
      return false;
    }
    await renameFile(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return true;
}

/** A write may take fewer bytes than it was given (POSIX allows it): the rest follows. */
async function writeFully(fd: number, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length; ) {
    written += (await writeAt(fd, bytes, written, bytes.length - written, written)).bytesWritten;
  }
}

async function openCreatingFolder(temp: string, folder: string): Promise<number> {
  try {
    return await openFile(temp, 'wx', 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(folder, { recursive: true });
  return openFile(temp, 'wx', 0o644);
}
