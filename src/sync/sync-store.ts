import type { EntrySetCall, SetResult } from '../entries/entry-store.js';
import { accountKeys } from '../redis/keys.js';
import { hashReplyEntries, runFencedScript, runScript, runScriptForBytes, UNFENCED, type Fence, type FenceTokenOf, type RedisClient } from '../redis/scripts.js';
import type { IndexReadScope } from './index-reads.js';
import type { FieldOps, Plan } from './plan-changes.js';
import type { DownloadItem, ListedEntry, LocalRecord } from './records.js';
import { cursorFromStored, storedCursor, type StoredCursor } from './stored-cursor.js';
import type { FailureKind, SyncFailure } from './sync-failure.js';

export type ListingMode = 'continue' | 'full';

/** A queued file that no retry could write while its path stays as it is (SyncStore.setAside). */
export interface SetAsideFile {
  /** Its path in Dropbox, as listed. */
  path: string;
  rev: string;
  kind: FailureKind;
  message: string;
  /** Epoch ms. */
  at: number;
}

export interface ListingStart {
  /**
   * `placed`: nothing may be listed now: a listed page whose apply placed its moves waits for its
   * commit (listing-begin.lua). The apply step comes first.
   */
  mode: ListingMode | 'placed';
  /** '' means list_folder from scratch; otherwise list_folder/continue from this cursor. */
  from: string;
  /** `from` exactly as Redis holds it: what the first page's save compares with (stored-cursor.ts). */
  fromStored: StoredCursor;
}

/** listing-begin.lua's `{ mode, from }`, read as bytes (the cursor may be: stored-cursor.ts), as a ListingStart. */
function listingStartOf([mode, from]: readonly [Buffer, Buffer]): ListingStart {
  const name = mode.toString('utf8');
  return { mode: name === 'full' || name === 'placed' ? name : 'continue', from: cursorFromStored(from), fromStored: from };
}

export interface PendingBatch {
  entries: ListedEntry[];
  /** The listed page the batch ends with (listedPageId of its cursor), for the commit to name; null or '' when nothing is listed and not applied. */
  pageId: string | null;
  mode: ListingMode;
  ignoreRules: string | null;
  /** An apply of this batch was cut short after it placed its moves (apply-moves.lua): a replay only completes them. */
  movesPlaced: boolean;
}

export interface ApplyInput {
  batch: PendingBatch;
  /**
   * The part of the local index this batch can touch (`indexScope`): everything `planChanges`,
   * `withLocalCasing` and the removals look at for it, so planning gives the same plan as on the
   * whole index. It is not the whole index: do not look up anything else in it.
   */
  index: LocalIndex;
  /** How much of the index was read: 'targeted' (what the batch touches), 'whole', or 'none' (no page to apply). See index-reads.ts. */
  indexScope: IndexReadScope;
  /**
   * The account's ignore patterns now (none when it was unlinked meanwhile: the commit is then
   * fenced); or, once this page's apply has begun its moves, the patterns it planned with.
   */
  ignore: string[];
}

/**
 * The largest download queue the commit returns to the caller. A run of a few changed files hands
 * its queue to the download step in the commit's reply (one round trip less per run); a first sync
 * of thousands is read by the download step itself, as a reply that size would be.
 */
export const HANDED_OVER_QUEUE_LIMIT = 256;

type ApplyLoadReply = [string[], string | null, string | null, string | null, string[], string[], string[], string[], string | null, IndexReadScope, (string | null)?];

export interface LocalIndex {
  files: Map<string, LocalRecord>;
  fileIds: Map<string, string>;
  ignored: Map<string, DownloadItem>;
  queue: Map<string, DownloadItem>;
}

/**
 * The durable sync state of an account (listing progress, unapplied changes, download queue, the
 * index of what is on disk). Each mutation is one Lua script, so a crash leaves either the state
 * before a step or after it, never half.
 */
export class SyncStore {
  constructor(private readonly redis: RedisClient, private readonly fenceOf: FenceTokenOf = UNFENCED) {}

  /** The account's fence key and the token this process writes with. */
  private fence(accountId: string): Fence {
    return { key: accountKeys(accountId).fence, token: this.fenceOf(accountId) };
  }

  /** Clears the dirty flag, records when the account was last listed, and says where to start. */
  async beginListing(accountId: string, now: number = Date.now()): Promise<ListingStart> {
    const k = accountKeys(accountId);
    return listingStartOf(await runFencedScript<[Buffer, Buffer]>(this.redis, 'listingBegin', this.fence(accountId), [k.mailbox, k.pageCursor, k.cursor, k.changes], [now], runScriptForBytes));
  }

  /**
   * Saves one page; false when the page was already saved (a replay), which is harmless. `from` is
   * the cursor the page was listed from as Redis holds it (ListingStart.fromStored, or the
   * storedCursor of the page before): the save's compare-and-set compares it byte for byte.
   */
  async savePage(accountId: string, from: StoredCursor, cursor: string, entries: readonly ListedEntry[]): Promise<boolean> {
    return (await this.saveListedPage(accountId, from, cursor, entries, false)).saved;
  }

  /**
   * Saves a listing's last page; with it (when saved now) comes what the apply step reads next
   * (loadApplyInput's answer, taken in the same step), for that step to use instead of reading it.
   */
  async saveLastPage(accountId: string, from: StoredCursor, cursor: string, entries: readonly ListedEntry[]): Promise<{ saved: boolean; applyInput?: ApplyInput }> {
    return this.saveListedPage(accountId, from, cursor, entries, true);
  }

  private async saveListedPage(accountId: string, from: StoredCursor, cursor: string, entries: readonly ListedEntry[], last: boolean): Promise<{ saved: boolean; applyInput?: ApplyInput }> {
    const k = accountKeys(accountId);
    const reply = await runFencedScript<0 | [1, ApplyLoadReply?]>(
      this.redis,
      'listingSavePage',
      this.fence(accountId),
      [k.mailbox, k.pageCursor, k.cursor, k.changes, k.files, k.fileIds, k.ignored, k.queue, k.applyRules],
      [from, storedCursor(cursor), last ? '1' : '0', ...entries.map((e) => JSON.stringify(e))],
    );
    if (reply === 0) return { saved: false };
    return { saved: true, ...(reply[1] ? { applyInput: parseApplyLoadReply(reply[1]) } : {}) };
  }

  async resetListing(accountId: string): Promise<void> {
    const k = accountKeys(accountId);
    await runFencedScript(
      this.redis,
      'listingReset',
      this.fence(accountId), [k.mailbox, k.pageCursor, k.changes]);
  }

  /**
   * What the apply step works from, read in one consistent step: the batch, the part of the local
   * index it can touch (the whole index only when it needs it: apply-load.lua, index-reads.ts), the
   * ignore patterns.
   */
  async loadApplyInput(accountId: string): Promise<ApplyInput> {
    const k = accountKeys(accountId);
    return parseApplyLoadReply(await runScript<ApplyLoadReply>(this.redis, 'applyLoad', [k.changes, k.mailbox, k.pageCursor, k.files, k.fileIds, k.ignored, k.queue, k.applyRules]));
  }

  /**
   * Commits an applied plan and moves the cursor. `committed` is false when it was already
   * committed; `queue` is the download queue as the commit left it, when it holds at most
   * HANDED_OVER_QUEUE_LIMIT items (the download step then need not read it back).
   */
  async commitPlan(accountId: string, pageId: string, consumed: number, index: Plan['index'], ignoreRules: string): Promise<{ committed: boolean; queue?: DownloadItem[] }> {
    const k = accountKeys(accountId);
    const ops = {
      queue: encode(index.queue),
      files: encode(index.files),
      fileIds: { set: index.fileIds.set, del: index.fileIds.del },
      ignored: encode(index.ignored),
    };
    const reply = await runFencedScript<0 | [1, string[]?]>(
      this.redis,
      'changesCommit',
      this.fence(accountId),
      [k.mailbox, k.pageCursor, k.cursor, k.changes, k.queue, k.files, k.fileIds, k.ignored, k.setAside, k.applyRules],
      [pageId, consumed, JSON.stringify(ops), ignoreRules, HANDED_OVER_QUEUE_LIMIT],
    );
    if (reply === 0) return { committed: false };
    const queue = reply[1];
    return { committed: true, ...(queue ? { queue: [...parseFlatValues<DownloadItem>(queue).values()] } : {}) };
  }

  async queued(accountId: string): Promise<DownloadItem[]> {
    const k = accountKeys(accountId);
    return [...parseValues<DownloadItem>(await this.redis.hgetall(k.queue)).values()];
  }

  /**
   * Fenced: records how far the apply of `pageId` has got with its moves (apply-moves.lua):
   * 'staging' as it begins them, 'placed' once they and the page's removals are done; and the
   * ignore patterns it planned with (`rules`, JSON), which its replay then plans with too
   * (loadApplyInput answers them as `ignore` until the commit).
   */
  async markMoves(accountId: string, phase: 'staging' | 'placed', pageId: string, rules: string): Promise<void> {
    const k = accountKeys(accountId);
    await runFencedScript(this.redis, 'applyMoves', this.fence(accountId), [k.mailbox, k.applyRules], [phase, pageId, rules]);
  }

  /** Throws FENCED unless this process still owns the account: asked before touching the disk. */
  async assertOwner(accountId: string): Promise<void> {
    await runFencedScript(this.redis, 'ownerCheck', this.fence(accountId), []);
  }

  /** Fenced: false when a newer listing queued another rev of this file (do not write it). */
  async isCurrentDownload(accountId: string, item: DownloadItem): Promise<boolean> {
    const k = accountKeys(accountId);
    return (await runFencedScript<number>(this.redis, 'downloadCheck', this.fence(accountId), [k.queue], [item.pathLower, item.rev])) === 1;
  }

  async queuedItem(accountId: string, pathLower: string): Promise<DownloadItem | null> {
    const raw = await this.redis.hget(accountKeys(accountId).queue, pathLower);
    return raw ? (JSON.parse(raw) as DownloadItem) : null;
  }

  async pendingCount(accountId: string): Promise<number> {
    return this.redis.hlen(accountKeys(accountId).queue);
  }

  async localRecord(accountId: string, pathLower: string): Promise<LocalRecord | null> {
    const raw = await this.redis.hget(accountKeys(accountId).files, pathLower);
    return raw ? (JSON.parse(raw) as LocalRecord) : null;
  }

  /**
   * Records a written file and dequeues it; `completed` is false when a newer listing superseded
   * this rev. With `entry` (the file is a post) its entry is set by the same script, one round trip
   * instead of two in series; `entry` in the answer is then what `EntryStore.set` would answer.
   */
  async completeDownload(
    accountId: string,
    item: DownloadItem,
    entry?: EntrySetCall,
  ): Promise<{ completed: boolean; entry: SetResult | null }> {
    const k = accountKeys(accountId);
    const record: LocalRecord = { kind: 'file', ...item };
    const completion = [item.pathLower, item.rev, JSON.stringify(record), item.id];
    if (!entry) {
      const done = await runFencedScript<number>(this.redis, 'downloadComplete', this.fence(accountId), [k.queue, k.files, k.fileIds], completion);
      return { completed: done === 1, entry: null };
    }
    const [done, ...set] = await runFencedScript<[number, string, number, number]>(
      this.redis,
      'downloadCompleteEntry',
      this.fence(accountId), [k.queue, k.files, k.fileIds, ...entry.keys], [...completion, ...entry.args]);
    return { completed: done === 1, entry: entry.result(set) };
  }

  /**
   * Takes a queued file that no retry can write off the queue, with the reason (SetAsideFile), so
   * the rest of the account syncs; false when a newer listing queued another rev meanwhile.
   */
  async setAside(accountId: string, item: DownloadItem, failure: Pick<SyncFailure, 'kind' | 'message' | 'at'>, options: { inMirror?: boolean } = {}): Promise<boolean> {
    const k = accountKeys(accountId);
    const record: SetAsideFile = { path: item.pathDisplay, rev: item.rev, kind: failure.kind, message: failure.message, at: failure.at };
    // In the mirror (a post whose entry cannot be built): indexed, so a deletion or an ignore rule
    // removes it, but with no rev or hash, so any listing that names it (a resync's) tries it again.
    const inMirror: LocalRecord | undefined = options.inMirror ? { kind: 'file', ...item, rev: '', contentHash: '' } : undefined;
    const file = inMirror ? [JSON.stringify(inMirror), item.id] : ['', ''];
    return (await runFencedScript<number>(this.redis, 'downloadSetAside', this.fence(accountId), [k.queue, k.setAside, k.files, k.fileIds], [item.pathLower, item.rev, JSON.stringify(record), ...file])) === 1;
  }

  async dropQueued(accountId: string, item: DownloadItem): Promise<void> {
    await runFencedScript(
      this.redis,
      'queueDrop',
      this.fence(accountId), [accountKeys(accountId).queue], [item.pathLower, item.rev]);
  }
}

/** apply-read.lua's answer (from applyLoad, or with a listing's last page) as the apply step's input. */
function parseApplyLoadReply([changes, pageId, mode, ignoreRules, files, fileIds, ignored, queue, ignore, indexScope, moves]: ApplyLoadReply): ApplyInput {
  return {
    batch: { entries: changes.map((line) => JSON.parse(line) as ListedEntry), pageId, mode: mode === 'full' ? 'full' : 'continue', ignoreRules, movesPlaced: !!pageId && moves === `placed ${pageId}` },
    index: {
      files: parseFlatValues<LocalRecord>(files),
      fileIds: new Map(hashReplyEntries(fileIds)),
      ignored: parseFlatValues<DownloadItem>(ignored),
      queue: parseFlatValues<DownloadItem>(queue),
    },
    indexScope,
    ignore: ignore ? (JSON.parse(ignore) as string[]) : [],
  };
}

export function parseFlatValues<T>(flat: readonly string[]): Map<string, T> {
  return new Map(hashReplyEntries(flat).map(([field, json]) => [field, JSON.parse(json) as T]));
}

function parseValues<T>(hash: Record<string, string>): Map<string, T> {
  return new Map(Object.entries(hash).map(([field, json]) => [field, JSON.parse(json) as T]));
}

function encode<T>(ops: FieldOps<T>): { set: [string, string][]; del: string[] } {
  return { set: ops.set.map(([field, value]) => [field, JSON.stringify(value)]), del: ops.del };
}
