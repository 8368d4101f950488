import { join } from 'node:path';
import type { AccountStore } from '../accounts/account-store.js';
import type { DropboxSession } from '../dropbox/dropbox-session.js';
import { buildEntryFromBytes, EntryBuildError, isPostPath, MAX_POST_BYTES } from '../entries/build-entry.js';
import type { EntryStore } from '../entries/entry-store.js';
import type { Clock } from '../engine/clock.js';
import type { EngineEvents } from '../engine/engine-events.js';
import type { Semaphore } from '../engine/semaphore.js';
import type { Logger } from '../logger.js';
import type { Mailbox } from '../mailbox/mailbox.js';
import type { SyncStore } from './sync-store.js';
import type { TempFilesAhead } from './write-file.js';

/** Turns files into entries: which files are posts, and a post's title and HTML. */
export interface EntryBuilder {
  /** Whether the file at this Dropbox `path_lower` becomes an entry. */
  isPost(pathLower: string): boolean;
  /**
   * The entry of a post (`path` is the display path). Pure. An EntryBuildError sets the file aside
   * until it changes (it stays in the mirror); any other throw fails that file's sync, retried with
   * backoff (for a moved post, the download step's: see apply-changes.ts).
   */
  build(file: { path: string; content: Buffer }): { title: string; html: string };
  /**
   * The largest post `build` takes, in bytes: a larger one is set aside (EntryBuildError) without
   * being read. At most, and by default, MAX_READABLE_POST_BYTES.
   */
  maxPostBytes?: number;
}

/** The largest post any builder is handed: a body past V8's string limit (about 512 MiB) could not even be decoded. */
export const MAX_READABLE_POST_BYTES = 256 * 1024 * 1024;

/** Throws EntryBuildError when a post of `size` bytes is larger than `builder` takes, before anything reads it. */
export function assertPostSize(builder: EntryBuilder, path: string, size: number): void {
  const limit = Math.min(builder.maxPostBytes ?? MAX_READABLE_POST_BYTES, MAX_READABLE_POST_BYTES);
  if (size > limit) throw new EntryBuildError(path, `it is ${size} bytes; a post is at most ${limit}`);
}

/** The default builder: `.md`/`.markdown` posts rendered as Markdown, `.txt` as escaped paragraphs. */
export const markdownEntryBuilder: EntryBuilder = {
  isPost: isPostPath,
  build: buildEntryFromBytes,
  maxPostBytes: MAX_POST_BYTES,
};

export interface OwnedStores {
  token: string;
  store: SyncStore;
  entries: EntryStore;
  mailbox: Mailbox;
}

/** Everything the sync steps need; the engine builds one, tests build their own. */
export interface SyncDeps {
  store: SyncStore;
  entries: EntryStore;
  accounts: AccountStore;
  mailbox: Mailbox;
  session: (accountId: string) => Promise<DropboxSession>;
  clock: Clock;
  log: Logger;
  events: EngineEvents;
  /** Mirrors live in `<dataDir>/mirrors/<accountId>`. */
  dataDir: string;
  /** Downloads in flight, shared by every account of the process. */
  downloadSlots: Semaphore;
  /**
   * Downloaded files being written (temp file, fsync, rename, Redis), shared by every account of
   * the process: with downloadSlots, what a crash can interrupt is bounded per process.
   */
  writeSlots: Semaphore;
  /** Temp files opened while their bytes download, not yet written: what a shutdown removes. */
  tempFiles: TempFilesAhead;
  downloadsPerAccount: number;
  /** `limit` for list_folder (Dropbox: 1..2000). */
  pageLimit: number;
  random: () => number;
  /** Resolves once the account holds one of the process's run slots (a retry leaving backoff waits for it). */
  runSlot: (accountId: string, signal: AbortSignal) => Promise<void>;
  /** A write was refused as FENCED: another process owns the account now; stop its actor here. */
  lostOwnership: (accountId: string, reason: string, token: string) => void;
  /**
   * A step wrote to the mirror and only then found it had lost the account (paused between its
   * fenced check and the write): the mirror may now hold a stale file the new owner will never look
   * at again. Asks the owner (whoever it is) for a full re-list, which re-hashes what is on disk.
   */
  requestReconcile: (accountId: string, reason: string) => void;
  /**
   * The stores bound to the fencing token the account has in this process now. A step takes them
   * when it starts, so if its actor is stopped and the account taken again (even by this process),
   * the old step's late writes carry the old token and are refused.
   */
  own: (accountId: string) => OwnedStores;
  /** In-call retries before a step fails into the actor's persisted backoff. */
  maxAttemptsPerCall: number;
  retryBaseDelayMs: number;
  /** Which files become entries and how (default: `markdownEntryBuilder`). */
  entryBuilder?: EntryBuilder;
}

export function mirrorFolder(dataDir: string, accountId: string): string {
  return join(dataDir, 'mirrors', accountId);
}

/** Outside the mirror (so the mirror stays an exact copy) but on the same file system (rename). */
export function stagingFolder(dataDir: string, accountId: string): string {
  return join(dataDir, 'staging', accountId);
}
