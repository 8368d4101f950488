import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { contentHash } from '../dropbox/content-hash.js';
import type { DropboxModel } from './model.js';
import { isSameOrInside, lowerPath } from './paths.js';
import { sendWebhook } from './webhook-sender.js';

export type LocalFolderOptions = {
  model: DropboxModel;
  accountId: string;
  /** The local directory that stands for the account's Dropbox root. */
  dir: string;
  /** Poll period; 0 disables the timer (call `rescan()` yourself). Default 1 s. */
  intervalMs?: number;
  /** Notify this endpoint after a rescan that changed something. */
  webhook?: { url: string; appSecret: string };
};

export type RescanResult = { written: string[]; created: string[]; removed: string[]; moved: string[] };

/** `identity`: device, inode, size and mtime; a rename keeps all four, so it tells a move from a delete and a create. */
type LocalEntry = { kind: 'file' | 'folder'; path: string; size: number; mtimeMs: number; identity: string };
type Seen = { kind: 'file' | 'folder'; size: number; mtimeMs: number; identity: string };

/**
 * Every file and folder under `dir` as Dropbox paths ("/a/b.txt"). Nothing is skipped (the engine
 * filters) but symbolic links, which are not followed: one could point out of the folder, or at a
 * parent and repeat the tree inside itself. Names Dropbox takes for one path (case, NFC/NFD: on
 * Linux "Readme.md" and "README.md" are two files) are served once, the first in code-unit order:
 * two files at one path would overwrite each other on every scan.
 */
async function scan(dir: string, prefix = '', taken = new Set<string>()): Promise<LocalEntry[]> {
  const entries: LocalEntry[] = [];
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch {
    return entries; // removed while scanning; the next rescan sees the final state
  }
  for (const name of names) {
    const full = join(dir, name);
    const path = `${prefix}/${name}`;
    const info = await lstat(full).catch(() => undefined);
    if (!info || info.isSymbolicLink()) continue;
    if (!info.isDirectory() && !info.isFile()) continue;
    const key = lowerPath(path);
    if (taken.has(key)) continue;
    taken.add(key);
    const kind = info.isDirectory() ? 'folder' : 'file';
    entries.push({ kind, path, size: info.size, mtimeMs: info.mtimeMs, identity: `${kind}:${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}` });
    if (kind === 'folder') entries.push(...(await scan(full, path, taken)));
  }
  return entries;
}

/**
 * Mirrors a local folder into one emulated account by polling (portable, unlike fs.watch): new or
 * changed files are written with their mtime as client_modified, vanished ones are removed, and a
 * file or folder renamed or moved is moved (its id kept, as Dropbox does for a move on the desktop).
 */
export class LocalFolderMirror {
  private readonly seen = new Map<string, Seen>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RescanResult> | undefined;
  private stopped = false;
  /** Ends a webhook's retries when the mirror stops (a shutting-down engine answers 503). */
  private readonly stopping = new AbortController();

  constructor(private readonly options: LocalFolderOptions) {}

  /** From now on, a rescan that changed something is followed by a webhook to this endpoint. */
  notify(webhook: { url: string; appSecret: string }): this {
    this.options.webhook = webhook;
    return this;
  }

  start(): this {
    const intervalMs = this.options.intervalMs ?? 1_000;
    if (intervalMs > 0) {
      const tick = () => {
        this.timer = setTimeout(() => void this.rescan().catch(() => undefined).finally(() => !this.stopped && tick()), intervalMs);
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
    const local = await scan(dir);
    this.applyMoves(local, result);
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
      const bytes = await readFile(join(dir, entry.path)).catch(() => undefined);
      if (!bytes) continue;
      this.seen.set(key, { kind: 'file', size: entry.size, mtimeMs: entry.mtimeMs, identity: entry.identity });
      if (existing?.kind === 'file' && existing.contentHash === contentHash(bytes)) continue;
      if (existing?.kind === 'folder') model.remove(accountId, existing.pathDisplay);
      model.writeFile(accountId, entry.path, bytes, { clientModified: new Date(entry.mtimeMs) });
      result.written.push(entry.path);
    }

    // Remove only the topmost vanished item: a folder's deletion implies its children.
    const removedRoots: string[] = [];
    for (const item of model.listTree(accountId)) {
      if (localLower.has(item.pathLower)) continue;
      if (removedRoots.some((root) => item.pathLower.startsWith(root + '/'))) continue;
      model.remove(accountId, item.pathDisplay);
      this.forget(item.pathLower);
      removedRoots.push(item.pathLower);
      result.removed.push(item.pathDisplay);
    }

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
  private applyMoves(local: readonly LocalEntry[], result: RescanResult): void {
    const { model, accountId } = this.options;
    const localLower = new Set(local.map((entry) => lowerPath(entry.path)));
    const vanished = new Map<string, string>();
    for (const item of model.listTree(accountId)) {
      if (localLower.has(item.pathLower)) continue;
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

  /** Drops what was seen at a path and under it. */
  private forget(pathLower: string): void {
    for (const key of [...this.seen.keys()]) if (isSameOrInside(key, pathLower)) this.seen.delete(key);
  }
}
