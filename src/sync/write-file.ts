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
 * A fenced check that ran alongside the fsync is asked again before the rename when the two took
 * longer than this: the rename then never acts on an answer older than about this much more than
 * the check's own round trip (a lease lasts seconds: LEASE_TTL_MS).
 */
export const RECHECK_AFTER_MS = 25;

/** A temp file opened in a target's folder before its bytes have arrived (openTempAhead). */
export interface TempFile {
  fd: number;
  path: string;
}

function tempPathIn(folder: string): string {
  // Not derived from the target's name: a name within the file system's 255 bytes would be past
  // them with a prefix and a suffix added (80 CJK characters are 240 bytes).
  return join(folder, `.${randomBytes(6).toString('hex')}.mailroom-tmp`);
}

/**
 * Opens the temp file of a write while its bytes are still being downloaded, so that creating it
 * (a thread-pool call, and on ext4 a wait for the journal: 0.6 to 1 ms on the benchmark machine)
 * is off the path from the last byte to the file in place. Undefined when the folder does not exist
 * yet (the write makes it once the bytes are in: a download that turns out gone leaves no folder
 * behind) or the open fails for any other reason (the write opens the file itself, and meets the
 * error there, where it is classified). The caller hands the file to writeFileAtomically or gives
 * it back with discardTempFile.
 */
export async function openTempAhead(folder: string): Promise<TempFile | undefined> {
  const path = tempPathIn(folder);
  try {
    return { fd: await openFile(path, 'wx', 0o644), path };
  } catch {
    return undefined;
  }
}

/** Closes and removes a temp file that will not be written (the download failed, was gone or stopped). */
export async function discardTempFile(temp: TempFile | undefined): Promise<void> {
  if (!temp) return;
  await closeQuietly(temp.fd);
  await rm(temp.path, { force: true }).catch(() => undefined);
}

/**
 * Writes `bytes` at `target` so a reader sees either the old file or the whole new one: a temp file
 * in the same folder (same file system, so the rename is atomic) with its mtime and atime already
 * set, fsync, rename. `fs.utimes` sets both times on Linux exactly as on macOS; the temp name starts
 * with a dot, so the engine's ignore rules never pick up a leftover. `beforeRename` is where the
 * caller checks, as late as it can, that it may still write (fenced ownership, the rev still
 * wanted): it runs while the temp file is fsync'd, and runs again when the two took longer than
 * `recheckAfterMs`, so its round trip is off the file's path without the rename ever acting on a
 * stale answer.
 *
 * Every file-system call here waits its turn in libuv's thread pool (4 threads by default, shared by
 * every download lane), so each call saved per file counts: the folder is created only when the
 * open says it is missing, and the times are set on the open handle. `ahead`: the temp file, opened
 * already by openTempAhead in `target`'s folder; this write then owns it.
 */
export async function writeFileAtomically(
  target: string,
  bytes: Uint8Array,
  mtime: Date,
  beforeRename: () => Promise<boolean> = async () => true,
  options: { ahead?: TempFile; recheckAfterMs?: number } = {},
): Promise<boolean> {
  const folder = dirname(target);
  const { ahead, recheckAfterMs = RECHECK_AFTER_MS } = options;
  if (ahead && dirname(ahead.path) !== folder) {
    await discardTempFile(ahead);
    throw new Error(`a temp file opened in ${dirname(ahead.path)} cannot be renamed to ${target}`);
  }
  const temp = ahead?.path ?? tempPathIn(folder);
  const fd = ahead?.fd ?? (await openCreatingFolder(temp, folder));
  let allowed: boolean;
  try {
    await writeFully(fd, bytes);
    // Before the fsync: the times are then as durable as the bytes, and the file never appears at
    // `target` with the time of its download instead of client_modified.
    await setTimes(fd, mtime, mtime);
    const checkedAt = performance.now();
    // Both settle before anything else: closing the fd under a running fsync could hand its
    // number to another file.
    const [synced, checked] = await Promise.allSettled([syncFile(fd), beforeRename()]);
    if (synced.status === 'rejected') throw synced.reason;
    if (checked.status === 'rejected') throw checked.reason;
    allowed = checked.value;
    if (allowed && performance.now() - checkedAt >= recheckAfterMs) allowed = await beforeRename();
  } catch (error) {
    await closeQuietly(fd);
    await rm(temp, { force: true });
    throw error;
  }
  if (!allowed) {
    await closeQuietly(fd);
    await rm(temp, { force: true });
    return false;
  }
  try {
    // The bytes are durable already: the close need not come first, and its error could say
    // nothing the fsync did not.
    await Promise.all([closeQuietly(fd), renameFile(temp, target)]);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return true;
}

/** Never throws: an fd is closed once, whatever happened to its file. */
function closeQuietly(fd: number): Promise<void> {
  return closeFile(fd).catch(() => undefined);
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
