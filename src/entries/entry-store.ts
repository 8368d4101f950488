import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { accountKeys } from '../redis/keys.js';
import { runFencedScript, UNFENCED, type Fence, type FenceTokenOf, type RedisClient } from '../redis/scripts.js';

/** A published blog entry: one per post file, keyed by the file's Dropbox `path_lower`. */
const entrySchema = z.object({
  id: z.string().min(1),
  /** Dropbox display path, e.g. "/Posts/Hello.md". */
  path: z.string(),
  title: z.string(),
  html: z.string(),
  /** Epoch ms when this entry first appeared; survives edits and renames. */
  created: z.number(),
  /** Epoch ms of the content version the html was built from; newer always wins. */
  updated: z.number(),
});

export type Entry = z.infer<typeof entrySchema>;

export interface EntryWrite {
  /** Dropbox's `path_lower`, passed through untouched: Dropbox's case folding is the key, not ours. */
  pathLower: string;
  path: string;
  title: string;
  html: string;
  /** Epoch ms of the content version; an older write than the stored one is ignored. */
  updated: number;
}

export interface SetResult {
  /** The entry as stored after this call (the stored one when the write was ignored). */
  entry: Entry;
  /** False when the stored entry was newer and this write was ignored. */
  applied: boolean;
  /** True when this call created the entry (the path had none). */
  created: boolean;
}

/** One `set`, ready to be carried by a script (entry-set.lua's keys and arguments, in order). */
export interface EntrySetCall {
  keys: [entryIds: string, entries: string];
  args: [pathLower: string, path: string, title: string, html: string, updated: number, freshId: string, now: number];
  /** Reads the script's `{ entry JSON, applied, created }`. */
  result(reply: [string, number, number]): SetResult;
}

export interface EntryStoreOptions {
  /** Source of ids for new entries. */
  newId?: () => string;
  /** Clock for `created` when `set` gets no explicit `now`. */
  clock?: () => number;
  /** The fencing token writes carry (the engine's lease); unfenced by default. */
  fenceOf?: FenceTokenOf;
}

/**
 * cjson in Redis encodes numbers with 14 significant digits, so larger integers would silently
 * lose precision on their way through Lua. Epoch ms stay below this until the year 5138.
 */
const MAX_TIMESTAMP = 1e14;

export class InvalidEntryInputError extends Error {
  constructor(readonly field: string, readonly value: unknown, reason: string) {
    super(`invalid ${field} ${JSON.stringify(value)}: ${reason}`);
    this.name = 'InvalidEntryInputError';
  }
}

export class CorruptEntryError extends Error {
  constructor(readonly accountId: string, readonly entryId: string, cause: unknown) {
    super(`stored entry ${entryId} of account ${accountId} is not valid entry JSON; delete or rewrite it`, { cause });
    this.name = 'CorruptEntryError';
  }
}

/**
 * The idempotent entry store: at most one entry per path, whatever order or how many times the
 * sync engine replays its writes. Every mutation is one Lua script over the account's `entryIds`
 * and `entries` hashes, so concurrent workers cannot interleave between reading and writing.
 */
export class EntryStore {
  private readonly newId: () => string;
  private readonly clock: () => number;
  private readonly fenceOf: FenceTokenOf;

  constructor(private readonly redis: RedisClient, options: EntryStoreOptions = {}) {
    this.newId = options.newId ?? randomUUID;
    this.clock = options.clock ?? Date.now;
    this.fenceOf = options.fenceOf ?? UNFENCED;
  }

  /** The account's fence key and the token this process writes with. */
  private fence(accountId: string): Fence {
    return { key: accountKeys(accountId).fence, token: this.fenceOf(accountId) };
  }

  /**
   * Creates or updates the entry at `write.pathLower`. An existing entry keeps its id and
   * `created`; a stored entry with a strictly newer `updated` wins and this write is ignored.
   * `now` becomes `created` if the entry is new.
   */
  async set(accountId: string, write: EntryWrite, options: { now?: number } = {}): Promise<SetResult> {
    const call = this.setCall(accountId, write, options);
    const reply = await runFencedScript<[string, number, number]>(this.redis, 'entrySet', this.fence(accountId), call.keys, call.args);
    return call.result(reply);
  }

  /**
   * `set` as keys and arguments for a script that sets the entry together with its own writes
   * (`download-complete-entry.lua`: one round trip per downloaded post). The checks, the fresh id
   * and `created` are this store's, so the rules stay the same whichever script carries them.
   */
  setCall(accountId: string, write: EntryWrite, options: { now?: number } = {}): EntrySetCall {
    const keys = accountKeys(accountId);
    requirePathLower('pathLower', write.pathLower);
    requireTimestamp('updated', write.updated);
    const now = options.now ?? this.clock();
    requireTimestamp('now', now);
    return {
      keys: [keys.entryIds, keys.entries],
      args: [write.pathLower, write.path, write.title, write.html, write.updated, this.newId(), now],
      result: ([json, applied, created]) => ({ entry: parseEntry(accountId, json), applied: applied === 1, created: created === 1 }),
    };
  }

  /**
   * Moves the entry at `fromPathLower` to `to`, keeping id, created, updated and html. If the
   * destination holds a different entry, that entry is dropped: Dropbox says the destination now
   * holds the moved file. Returns null when the source has no entry, which is also what a replay
   * of an already-applied rename sees, so replays are harmless no-ops.
   */
  async rename(accountId: string, fromPathLower: string, to: { pathLower: string; path: string }): Promise<Entry | null> {
    const keys = accountKeys(accountId);
    requirePathLower('fromPathLower', fromPathLower);
    requirePathLower('pathLower', to.pathLower);
    const json = await runFencedScript<string | null>(
      this.redis,
      'entryRename',
      this.fence(accountId), [keys.entryIds, keys.entries], [fromPathLower, to.pathLower, to.path],
    );
    return json === null ? null : parseEntry(accountId, json);
  }

  /** Drops the entry at `pathLower`, if any. Returns how many were dropped (0 or 1). */
  async drop(accountId: string, pathLower: string): Promise<number> {
    const keys = accountKeys(accountId);
    requirePathLower('pathLower', pathLower);
    return runFencedScript<number>(
      this.redis,
      'entryDrop',
      this.fence(accountId), [keys.entryIds, keys.entries], [pathLower, 'path']);
  }

  /**
   * Drops every entry at or under a deleted folder (`/a` covers `/a/x.md`, never `/ab.md`).
   * Scans all of the account's paths inside one script: fine for the thousands of entries an
   * account holds, see entry-drop.lua. The root is refused: Dropbox never deletes it, so a caller
   * asking for it is a bug that would otherwise wipe the whole blog.
   */
  async dropUnder(accountId: string, folderPathLower: string): Promise<number> {
    const keys = accountKeys(accountId);
    requirePathLower('folderPathLower', folderPathLower);
    if (folderPathLower.endsWith('/')) {
      throw new InvalidEntryInputError('folderPathLower', folderPathLower,
        'must not end with "/" (and the root cannot be dropped as a folder)');
    }
    return runFencedScript<number>(
      this.redis,
      'entryDrop',
      this.fence(accountId), [keys.entryIds, keys.entries], [folderPathLower, 'under']);
  }

  async get(accountId: string, pathLower: string): Promise<Entry | null> {
    const keys = accountKeys(accountId);
    const id = await this.redis.hget(keys.entryIds, pathLower);
    if (id === null) return null;
    const json = await this.redis.hget(keys.entries, id);
    // The id can vanish between the two reads if a drop runs in between; that reads as "gone".
    return json === null ? null : parseEntry(accountId, json);
  }

  /**
   * Every entry of the account, sorted by path_lower (Dropbox's case-insensitive order, so the
   * order doesn't depend on how a folder's case happens to be displayed). Both hashes are read in
   * one MULTI so the snapshot is consistent.
   */
  async list(accountId: string): Promise<Entry[]> {
    const keys = accountKeys(accountId);
    const replies = await this.redis.multi().hgetall(keys.entryIds).hgetall(keys.entries).exec();
    const [idsReply, entriesReply] = replies ?? [];
    // exec() answers null only when a WATCH fails, and there is none; command errors are rethrown as is.
    if (!idsReply || !entriesReply) throw new Error(`listing entries of account ${accountId}: transaction was discarded`);
    if (idsReply[0]) throw idsReply[0];
    if (entriesReply[0]) throw entriesReply[0];
    const idsByPath = idsReply[1] as Record<string, string>;
    const jsonById = entriesReply[1] as Record<string, string>;
    const listed: { pathLower: string; entry: Entry }[] = [];
    for (const [pathLower, id] of Object.entries(idsByPath)) {
      const json = jsonById[id];
      if (json !== undefined) listed.push({ pathLower, entry: parseEntry(accountId, json) });
    }
    listed.sort((a, b) => compareStrings(a.pathLower, b.pathLower));
    return listed.map(({ entry }) => entry);
  }

  /**
   * One page of the account's entries from `cursor` ('0' to start): about `count` of them (HSCAN's
   * COUNT is a hint, and a small hash comes whole), sorted by path_lower within the page, and the
   * cursor of the next page, null after the last. Pages come in no order; an entry set or dropped
   * during the walk may come twice or not at all (SCAN's guarantees), unlike `list`, which reads
   * one consistent snapshot.
   */
  async listPage(accountId: string, cursor: string, count: number): Promise<{ entries: Entry[]; next: string | null }> {
    const keys = accountKeys(accountId);
    const paths: string[] = [];
    const ids: string[] = [];
    let at = cursor;
    do {
      const [next, pairs] = await this.redis.hscan(keys.entryIds, at, 'COUNT', count);
      at = next;
      for (let i = 0; i + 1 < pairs.length; i += 2) {
        paths.push(pairs[i]!);
        ids.push(pairs[i + 1]!);
      }
    } while (at !== '0' && ids.length < count);
    const jsons = ids.length ? await this.redis.hmget(keys.entries, ...ids) : [];
    const listed: { pathLower: string; entry: Entry }[] = [];
    for (const [i, json] of jsons.entries()) if (json !== null) listed.push({ pathLower: paths[i]!, entry: parseEntry(accountId, json) });
    listed.sort((a, b) => compareStrings(a.pathLower, b.pathLower));
    return { entries: listed.map(({ entry }) => entry), next: at === '0' ? null : at };
  }

  async count(accountId: string): Promise<number> {
    return this.redis.hlen(accountKeys(accountId).entryIds);
  }
}

function parseEntry(accountId: string, json: string): Entry {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new CorruptEntryError(accountId, '(unparseable)', error);
  }
  const parsed = entrySchema.safeParse(value);
  if (!parsed.success) {
    const id = typeof (value as { id?: unknown })?.id === 'string' ? (value as { id: string }).id : '(unknown)';
    throw new CorruptEntryError(accountId, id, parsed.error);
  }
  return parsed.data;
}

function requirePathLower(field: string, pathLower: string): void {
  if (!pathLower.startsWith('/')) {
    throw new InvalidEntryInputError(field, pathLower, 'expected a Dropbox path_lower starting with "/"');
  }
}

function requireTimestamp(field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value >= MAX_TIMESTAMP) {
    throw new InvalidEntryInputError(field, value, 'expected epoch milliseconds as a non-negative integer below 1e14');
  }
}

/** Code-unit order: deterministic and locale-independent, unlike localeCompare. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
