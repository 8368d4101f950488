import { close, fsync, futimes, open, rename, write } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
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
 * The mtime a synced file gets: Dropbox's client_modified exactly, even ahead of this host's clock
 * (an uploader's clock runs fast, or another host's is behind): the mirror must say what Dropbox
 * says, and the index keeps the listed value, so a clamped mtime would never be corrected. (Maestral
 * clamps to now; a blog's dates come from what its author's client recorded.) Only a value that is
 * not a date at all falls back to now.
 */
export function mtimeFor(clientModified: string, now: number): Date {
  const parsed = Date.parse(clientModified);
  return new Date(Number.isFinite(parsed) ? parsed : now);
}

/**
 * A fenced check that ran alongside the fsync is asked again before the rename when its answer then
 * waited this long for the fsync: the rename never acts on an answer older than this (a lease lasts
 * seconds: LEASE_TTL_MS). A slow check alone (Redis struggling) is not asked twice.
 */
export const RECHECK_AFTER_MS = 25;

/** A temp file opened in a target's folder before its bytes have arrived (TempFilesAhead). */
export interface TempFile {
  fd: number;
  path: string;
}

/** A new temp file's path in `folder` (nothing is created). */
export function tempPathIn(folder: string): string {
  // Not derived from the target's name: a name within the file system's 255 bytes would be past
  // them with a prefix and a suffix added (80 CJK characters are 240 bytes).
  return join(folder, `.${randomBytes(6).toString('hex')}.mailroom-tmp`);
}

/**
 * The names tempPathIn gives, and the `.part` file the SDK's downloadFile streams a large file into
 * before it renames it to that name. No synced file has one: the engine ignores dot-named paths
 * (sync/paths.ts).
 */
const TEMP_NAME = /^\.[0-9a-f]{12}\.mailroom-tmp(?:\.part)?$/;

/**
 * Removes the temp files a write left in `folders` when its process was killed or crashed (an
 * empty one opened ahead of its bytes, or one half written): how many. For the caller that alone
 * writes these folders now (the account's download step: another step's late write is fenced),
 * before it writes any. A folder that does not exist is skipped.
 */
export async function removeLeftoverTempFiles(folders: Iterable<string>): Promise<number> {
  const removed = await Promise.all(
    [...folders].map(async (folder) => {
      const names = await readdir(folder).catch(() => [] as string[]);
      const leftovers = names.filter((name) => TEMP_NAME.test(name));
      await Promise.all(leftovers.map((name) => rm(join(folder, name), { force: true })));
      return leftovers.length;
    }),
  );
  return removed.reduce((sum, count) => sum + count, 0);
}

/**
 * The temp files one engine opened ahead of their bytes and has not yet handed to a write or
 * discarded. A download opens its temp file while its bytes arrive, so that creating it (a
 * thread-pool call, and on ext4 a wait for the journal: 0.6 to 1 ms on the benchmark machine) is off
 * the path from the last byte to the file in place. Each such file has one owner at a time: this
 * registry until `take` hands it to its write or `discard` removes it, so a lane's discard and a
 * shutdown's `discardAll` never close the same fd twice (a second close could close another file
 * that reused the number), and a graceful shutdown leaves none in the mirror.
 */
export class TempFilesAhead {
  private readonly held = new Set<TempFile>();
  /** Opens and removals under way: a shutdown waits for them, so none finishes after it. */
  private readonly underWay = new Set<Promise<unknown>>();
  private closed = false;

  /**
   * A temp file opened in `folder`, or undefined when the folder does not exist yet (the write makes
   * it once the bytes are in: a download that turns out gone leaves no folder behind), the open
   * fails for any other reason (the write opens the file itself and meets the error there, where it
   * is classified), or the engine is shutting down.
   */
  open(folder: string): Promise<TempFile | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    return this.track(this.opened(tempPathIn(folder)));
  }

  /** Hands `temp` to its write (writeFileAtomically's `ahead`): false when it was discarded meanwhile. */
  take(temp: TempFile): boolean {
    return this.held.delete(temp);
  }

  /** Closes and removes `temp` (its download failed, was gone or was stopped), unless it is no longer held. */
  discard(temp: TempFile | undefined): Promise<void> {
    if (!temp || !this.held.delete(temp)) return Promise.resolve();
    return this.track(removeTemp(temp));
  }

  /**
   * Shutdown: removes every temp file still held and any whose open completes from now on, and
   * returns once no open or removal is under way.
   */
  async discardAll(): Promise<void> {
    this.closed = true;
    const held = [...this.held];
    this.held.clear();
    await Promise.all(held.map(removeTemp));
    while (this.underWay.size > 0) await Promise.all(this.underWay);
  }

  private async opened(path: string): Promise<TempFile | undefined> {
    let fd: number;
    try {
      fd = await openFile(path, 'wx', 0o644);
    } catch {
      return undefined;
    }
    const temp = { fd, path };
    if (this.closed) {
      await removeTemp(temp);
      return undefined;
    }
    this.held.add(temp);
    return temp;
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.underWay.add(work);
    return work.finally(() => this.underWay.delete(work));
  }
}

async function removeTemp(temp: TempFile): Promise<void> {
  await closeQuietly(temp.fd);
  await rm(temp.path, { force: true }).catch(() => undefined);
}

/**
 * Writes `bytes` at `target` so a reader sees either the old file or the whole new one: a temp file
 * in the same folder (same file system, so the rename is atomic) with its mtime and atime already
 * set, fsync, rename. `fs.utimes` sets both times on Linux exactly as on macOS; the temp name starts
 * with a dot, so the engine's ignore rules never pick up a leftover. `beforeRename` is where the
 * caller checks, as late as it can, that it may still write (fenced ownership, the rev still
 * wanted): it runs while the temp file is fsync'd, and runs again when its answer then waited
 * `recheckAfterMs` or more for the fsync, so its round trip is off the file's path without the
 * rename ever acting on an answer older than that.
 *
 * Every file-system call here waits its turn in libuv's thread pool (4 threads by default, shared by
 * every download lane), so each call saved per file counts: the folder is created only when the
 * open says it is missing, and the times are set on the open handle. `ahead`: the temp file opened
 * already in `target`'s folder (TempFilesAhead, taken from it); this write then owns it.
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
    await removeTemp(ahead);
    throw new Error(`a temp file opened in ${dirname(ahead.path)} cannot be renamed to ${target}`);
  }
  const temp = ahead?.path ?? tempPathIn(folder);
  const fd = ahead?.fd ?? (await openCreatingFolder(temp, folder));
  return placeAtomically(fd, temp, target, mtime, beforeRename, recheckAfterMs, () => writeFully(fd, bytes));
}

/**
 * writeFileAtomically for a file whose bytes are already in `temp`, a temp file beside `target`
 * (tempPathIn: a large download the SDK streamed there): the same times, fsync, check and rename.
 * The temp file is gone afterwards, whatever happened.
 */
export async function placeFileAtomically(
  target: string,
  temp: string,
  mtime: Date,
  beforeRename: () => Promise<boolean> = async () => true,
  options: { recheckAfterMs?: number } = {},
): Promise<boolean> {
  if (dirname(temp) !== dirname(target)) {
    await rm(temp, { force: true });
    throw new Error(`a temp file in ${dirname(temp)} cannot be renamed to ${target}`);
  }
  let fd: number;
  try {
    fd = await openFile(temp, 'r+');
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return placeAtomically(fd, temp, target, mtime, beforeRename, options.recheckAfterMs ?? RECHECK_AFTER_MS, async () => {});
}

/** The common end of both: `fill` the open temp file, set its times, fsync while checking, rename. */
async function placeAtomically(
  fd: number,
  temp: string,
  target: string,
  mtime: Date,
  beforeRename: () => Promise<boolean>,
  recheckAfterMs: number,
  fill: () => Promise<void>,
): Promise<boolean> {
  let allowed: boolean;
  try {
    await fill();
    // Before the fsync: the times are then as durable as the bytes, and the file never appears at
    // `target` with the time of its download instead of client_modified.
    await setTimes(fd, mtime, mtime);
    let answeredAt = 0;
    // Both settle before anything else: closing the fd under a running fsync could hand its
    // number to another file (hence the check is called from a promise: even a synchronous throw
    // of it waits for the fsync).
    const [synced, checked] = await Promise.allSettled([
      syncFile(fd),
      Promise.resolve().then(beforeRename).then((answer) => {
        answeredAt = performance.now();
        return answer;
      }),
    ]);
    if (synced.status === 'rejected') throw synced.reason;
    if (checked.status === 'rejected') throw checked.reason;
    allowed = checked.value;
    // An answer that waited long for the fsync is asked for again: the rename acts on none older.
    if (allowed && performance.now() - answeredAt >= recheckAfterMs) allowed = await beforeRename();
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
