import type { Stats } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { contentHash } from '../dropbox/content-hash.js';
import { silentLogger, type Logger } from '../logger.js';
import type { DropboxModel } from './model.js';
import { isSameOrInside, lowerPath } from './paths.js';
import { sendWebhook } from './webhook-sender.js';

/** The file-system calls the mirror makes (default node:fs/promises); a test can make one fail for a path. */
export type LocalFolderFs = {
  readdir(path: string): Promise<string[]>;
  lstat(path: string): Promise<Stats>;
  open(path: string, flags: number): Promise<Pick<FileHandle, 'stat' | 'readFile' | 'close'>>;
};

const nodeFs: LocalFolderFs = { readdir: (path) => fsPromises.readdir(path), lstat: (path) => fsPromises.lstat(path), open: (path, flags) => fsPromises.open(path, flags) };

export type LocalFolderOptions = {
  model: DropboxModel;
  accountId: string;
  /** The local directory that stands for the account's Dropbox root. */
  dir: string;
  /** Poll period; 0 disables the timer (call `rescan()` yourself). Default 1 s. */
  intervalMs?: number;
  /** Notify this endpoint after a rescan that changed something. */
  webhook?: { url: string; appSecret: string };
  /** Says which paths cannot be read (once per path and error), and when they can again. Default silent. */
  log?: Logger;
  fs?: LocalFolderFs;
};

export type RescanResult = { written: string[]; created: string[]; removed: string[]; moved: string[] };

/**
 * `identity`: device, inode, size and mtime; a rename keeps all four, so it tells a move from a
 * delete and a create. `dev` and `ino` alone tell whether a path opened later is still this file.
 */
type LocalEntry = { kind: 'file' | 'folder'; path: string; size: number; mtimeMs: number; identity: string; dev: number; ino: number };
type Seen = { kind: 'file' | 'folder'; size: number; mtimeMs: number; identity: string };

/**
 * A path the scan failed to read for another reason than its being gone (EACCES, EIO, EMFILE, …):
 * with `under`, what is below it (its listing failed), else the item itself (its lstat or read
 * failed). What it covers keeps its last state: a failure says nothing about whether it is there.
 */
type Unreadable = { path: string; pathLower: string; under: boolean; code: string; error: unknown };

type Scanned = { entries: LocalEntry[]; unreadable: Unreadable[] };

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

function unreadableAt(path: string, under: boolean, error: unknown): Unreadable {
  return { path: path === '' ? '/' : path, pathLower: lowerPath(path), under, code: errorCode(error), error };
}

function covers(unreadable: Unreadable, pathLower: string): boolean {
  if (unreadable.under && pathLower === unreadable.pathLower) return false;
  return isSameOrInside(pathLower, unreadable.pathLower);
}

/**
 * Every file and folder under `dir` as Dropbox paths ("/a/b.txt"). Nothing is skipped (the engine
 * filters) but symbolic links, which are not followed: one could point out of the folder, or at a
 * parent and repeat the tree inside itself. Names Dropbox takes for one path (case, NFC/NFD: on
 * Linux "Readme.md" and "README.md" are two files) are served once, the first in code-unit order:
 * two files at one path would overwrite each other on every scan. Only ENOENT says an item is gone:
 * a folder that cannot be listed or an item that cannot be lstat-ed for another reason goes into
 * `unreadable`, and the account keeps what it covers as it was (a failing disk or a full file table
 * must not read as the user deleting their posts).
 */
async function scan(fs: LocalFolderFs, dir: string, prefix = '', found: Scanned = { entries: [], unreadable: [] }, taken = new Set<string>()): Promise<Scanned> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).sort();
  } catch (error) {
    // ENOENT: removed while scanning, and what was in it with it. Any other failure is no news about its items.
    if (errorCode(error) !== 'ENOENT') found.unreadable.push(unreadableAt(prefix, true, error));
    return found;
  }
  for (const name of names) {
    const full = join(dir, name);
    const path = `${prefix}/${name}`;
    const key = lowerPath(path);
    if (taken.has(key)) continue;
    let info: Stats;
    try {
      info = await fs.lstat(full);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') continue;
      found.unreadable.push(unreadableAt(path, false, error));
      taken.add(key); // another name for the same Dropbox path must not be served over it meanwhile
      continue;
    }
    if (info.isSymbolicLink()) continue;
    if (!info.isDirectory() && !info.isFile()) continue;
    taken.add(key);
    const kind = info.isDirectory() ? 'folder' : 'file';
    found.entries.push({ kind, path, size: info.size, mtimeMs: info.mtimeMs, identity: `${kind}:${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`, dev: info.dev, ino: info.ino });
    if (kind === 'folder') await scan(fs, full, path, found, taken);
  }
  return found;
}

/**
 * A listed file's bytes, read through a handle opened without following a symbolic link, and only
 * if the handle is the file the scan's lstat saw: a file swapped for a link since (or a folder
 * above it, after its lstat) would otherwise serve a file from outside the folder. `changed` when
 * it is gone, a link, or another file now: a race the next scan settles. O_NONBLOCK: a FIFO swapped
 * in would otherwise hang the open (it does nothing for a regular file). Not caught: a folder
 * swapped for a link between its lstat and its readdir (its listing, lstats and opens all go
 * through the link alike); that needs openat/fdopendir, which node:fs does not offer.
 */
async function readListed(fs: LocalFolderFs, full: string, entry: LocalEntry): Promise<Uint8Array | 'changed' | { error: unknown }> {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fsPromises.constants;
  let handle: Awaited<ReturnType<LocalFolderFs['open']>>;
  try {
    handle = await fs.open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = errorCode(error);
    return code === 'ENOENT' || code === 'ELOOP' ? 'changed' : { error };
  }
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.dev !== entry.dev || info.ino !== entry.ino) return 'changed';
    return await handle.readFile();
  } catch (error) {
    return { error };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Mirrors a local folder into one emulated account by polling (portable, unlike fs.watch): new or
 * changed files are written with their mtime as client_modified, vanished ones are removed, and a
 * file or folder renamed or moved is moved (its id kept, as Dropbox does for a move on the desktop).
 */
export class LocalFolderMirror {
  private readonly seen = new Map<string, Seen>();
  /** What was reported unreadable (by path and whether it is what is under it) and with which error code. */
  private readonly reported = new Map<string, Unreadable>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RescanResult> | undefined;
  private stopped = false;
  /** Ends a webhook's retries when the mirror stops (a shutting-down engine answers 503). */
  private readonly stopping = new AbortController();

  constructor(private readonly options: LocalFolderOptions) {}

  private get log(): Logger {
    return this.options.log ?? silentLogger;
  }

  /** From now on, a rescan that changed something is followed by a webhook to this endpoint. */
  notify(webhook: { url: string; appSecret: string }): this {
    this.options.webhook = webhook;
    return this;
  }

  start(): this {
    const intervalMs = this.options.intervalMs ?? 1_000;
    if (intervalMs > 0) {
      const tick = () => {
        const pass = () => this.rescan().catch((error: unknown) => this.log.warn({ err: error }, 'demo folder: rescan failed; trying again'));
        this.timer = setTimeout(() => void pass().finally(() => !this.stopped && tick()), intervalMs);
      };
      tick();
    }
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopping.abort();
    await this.running?.catch(() => undefined);
  }

  /** One scan-and-apply pass; concurrent calls share the pass in progress, then run another. */
  async rescan(): Promise<RescanResult> {
    const previous = this.running;
    const next = (async () => {
      await previous?.catch(() => undefined);
      return this.applyOnce();
    })();
    this.running = next;
    return next;
  }

  private async applyOnce(): Promise<RescanResult> {
    const { model, accountId, dir } = this.options;
    const result: RescanResult = { written: [], created: [], removed: [], moved: [] };
    const fs = this.options.fs ?? nodeFs;
    const { entries: local, unreadable } = await scan(fs, dir);
    const unknown = (pathLower: string) => unreadable.some((item) => covers(item, pathLower));
    this.applyMoves(local, unknown, result);
    const remote = new Map(model.listTree(accountId).map((item) => [item.pathLower, item]));
    const localLower = new Set(local.map((entry) => lowerPath(entry.path)));

    for (const entry of local) {
      const key = lowerPath(entry.path);
      const existing = remote.get(key);
      if (entry.kind === 'folder') {
        this.seen.set(key, { kind: 'folder', size: entry.size, mtimeMs: entry.mtimeMs, identity: entry.identity });
        if (existing?.kind === 'file') model.remove(accountId, existing.pathDisplay);
        if (existing?.kind !== 'folder') {
          model.mkdir(accountId, entry.path);
          result.created.push(entry.path);
        }
        continue;
      }
      const seen = this.seen.get(key);
      const unchanged = existing?.kind === 'file' && seen?.kind === 'file' && seen.size === entry.size && seen.mtimeMs === entry.mtimeMs;
      if (unchanged) continue;
      // A file that cannot be read keeps its last state in the account (it is listed, so not removed).
      const bytes = await readListed(fs, join(dir, entry.path), entry);
      if (bytes === 'changed') continue;
      if (!(bytes instanceof Uint8Array)) {
        unreadable.push(unreadableAt(entry.path, false, bytes.error));
        continue;
      }
      this.seen.set(key, { kind: 'file', size: entry.size, mtimeMs: entry.mtimeMs, identity: entry.identity });
      if (existing?.kind === 'file' && existing.contentHash === contentHash(bytes)) continue;
      if (existing?.kind === 'folder') model.remove(accountId, existing.pathDisplay);
      model.writeFile(accountId, entry.path, bytes, { clientModified: new Date(entry.mtimeMs) });
      result.written.push(entry.path);
    }

    // Remove only the topmost vanished item: a folder's deletion implies its children.
    const removedRoots: string[] = [];
    for (const item of model.listTree(accountId)) {
      if (localLower.has(item.pathLower) || unknown(item.pathLower)) continue;
      if (removedRoots.some((root) => item.pathLower.startsWith(root + '/'))) continue;
      model.remove(accountId, item.pathDisplay);
      this.forget(item.pathLower);
      removedRoots.push(item.pathLower);
      result.removed.push(item.pathDisplay);
    }

    this.report(unreadable);
    const changed = result.written.length + result.created.length + result.removed.length + result.moved.length > 0;
    if (changed && this.options.webhook) {
      await sendWebhook({ ...this.options.webhook, accounts: [accountId], signal: this.stopping.signal });
    }
    return result;
  }

  /**
   * A path new to the account whose file or folder was last seen at a path that is gone now (same
   * inode, size and mtime) was renamed or moved there: moved in the account, so its id is kept
   * (and with it the engine's entry) instead of a deletion and a new file. A folder moves with its
   * contents, parents come before children in `local`.
   */
  private applyMoves(local: readonly LocalEntry[], unknown: (pathLower: string) => boolean, result: RescanResult): void {
    const { model, accountId } = this.options;
    const localLower = new Set(local.map((entry) => lowerPath(entry.path)));
    const vanished = new Map<string, string>();
    for (const item of model.listTree(accountId)) {
      if (localLower.has(item.pathLower) || unknown(item.pathLower)) continue;
      const seen = this.seen.get(item.pathLower);
      if (seen?.kind === item.kind) vanished.set(seen.identity, item.pathDisplay);
    }
    if (vanished.size === 0) return;
    let present = new Set(model.listTree(accountId).map((item) => item.pathLower));
    for (const entry of local) {
      const to = lowerPath(entry.path);
      if (present.has(to)) continue;
      const from = vanished.get(entry.identity);
      if (from === undefined || !present.has(lowerPath(from))) continue;
      vanished.delete(entry.identity);
      try {
        model.move(accountId, from, entry.path);
      } catch {
        continue; // e.g. into a path a file holds: the plain pass writes and removes instead
      }
      const fromLower = lowerPath(from);
      for (const [key, seen] of [...this.seen]) {
        if (!isSameOrInside(key, fromLower)) continue;
        this.seen.delete(key);
        this.seen.set(to + key.slice(fromLower.length), seen);
      }
      result.moved.push(`${from} -> ${entry.path}`);
      present = new Set(model.listTree(accountId).map((item) => item.pathLower));
    }
  }

  /**
   * Logs each path that could not be read once per error code, not on every scan, and says when
   * one reads again (or is gone), so that a later failure of it is reported again.
   */
  private report(unreadable: readonly Unreadable[]): void {
    const current = new Map(unreadable.map((item) => [`${item.under ? 'under' : 'at'} ${item.pathLower}`, item]));
    for (const [key, item] of current) {
      if (this.reported.get(key)?.code === item.code) continue;
      this.reported.set(key, item);
      const what = item.under ? 'cannot list this folder: what is in it' : 'cannot read this file or folder: it';
      this.log.warn({ path: item.path, code: item.code, err: item.error }, `demo folder: ${what} stays in the account as it was until it can be read`);
    }
    for (const [key, item] of this.reported) {
      if (current.has(key)) continue;
      this.reported.delete(key);
      this.log.info({ path: item.path }, 'demo folder: read again (or gone): its changes are synced from now on');
    }
  }

  /** Drops what was seen at a path and under it. */
  private forget(pathLower: string): void {
    for (const key of [...this.seen.keys()]) if (isSameOrInside(key, pathLower)) this.seen.delete(key);
  }
}
