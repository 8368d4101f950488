import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { openRedis } from '../../src/redis/connection.js';
import { accountKeys } from '../../src/redis/keys.js';
import { EntryStore, InvalidEntryInputError, type EntryWrite, type SetResult } from '../../src/entries/entry-store.js';
import type { DownloadItem } from '../../src/sync/records.js';
import { SyncStore } from '../../src/sync/sync-store.js';
import { TestRedis } from '../support/redis-server.js';

let server: TestRedis;
let redis: Redis;
let store: EntryStore;

beforeAll(async () => {
  server = await TestRedis.start();
  redis = await openRedis(server.url);
  store = new EntryStore(redis);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

let accounts = 0;
/** Each test writes to its own account so tests never see each other's entries. */
const freshAccount = () => `acct-${++accounts}`;

function post(pathLower: string, html: string, updated: number, path = pathLower): EntryWrite {
  return { pathLower, path, title: pathLower, html, updated };
}

async function storedCounts(accountId: string): Promise<{ ids: number; entries: number }> {
  const keys = accountKeys(accountId);
  return { ids: await redis.hlen(keys.entryIds), entries: await redis.hlen(keys.entries) };
}

/**
 * The two ways an entry is set: `EntryStore.set` (entry-set.lua), and together with a download's
 * completion (download-complete-entry.lua, one script per downloaded post). Every rule of the store
 * is checked through both, so the two scripts cannot drift apart.
 */
type SetThrough = (entries: EntryStore, client: Redis, account: string, write: EntryWrite, options?: { now?: number }) => Promise<SetResult>;
const SET_PATHS: [string, SetThrough][] = [
  ['alone (entry-set.lua)', (entries, _client, account, write, options) => entries.set(account, write, options)],
  ['with a download completion (download-complete-entry.lua)', async (entries, client, account, write, options) => {
    const done = await new SyncStore(client).completeDownload(account, downloadOf(write), entries.setCall(account, write, options));
    if (!done.completed || !done.entry) throw new Error(`the download of ${write.pathLower} was not completed`);
    return done.entry;
  }],
];

function downloadOf(write: EntryWrite): DownloadItem {
  return {
    pathLower: write.pathLower, pathDisplay: write.path, id: `id:${write.pathLower}`, rev: `r${write.updated}`, contentHash: 'h'.repeat(64), size: 1,
    clientModified: '2024-01-01T00:00:00Z', serverModified: new Date(write.updated).toISOString(),
  };
}

describe.each(SET_PATHS)('set, %s', (_name, through) => {
  const set = (account: string, write: EntryWrite, options?: { now?: number }) => through(store, redis, account, write, options);

  it('keeps one id when a newer version follows (the design note example)', async () => {
    const account = freshAccount();
    const first = await set(account, post('/foo.txt', 'A', 1));
    const second = await set(account, post('/foo.txt', 'B', 2));
    expect(first).toMatchObject({ applied: true, created: true });
    expect(second).toMatchObject({ applied: true, created: false });
    expect(second.entry.id).toBe(first.entry.id);
    expect((await store.get(account, '/foo.txt'))?.html).toBe('B');
    expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
  });

  it('ignores an older version arriving after a newer one', async () => {
    const account = freshAccount();
    const newer = await set(account, post('/foo.txt', 'B', 2));
    const older = await set(account, post('/foo.txt', 'A', 1));
    expect(older.applied).toBe(false);
    expect(older.created).toBe(false);
    expect(older.entry).toEqual(newer.entry);
    expect((await store.get(account, '/foo.txt'))?.html).toBe('B');
    expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
  });

  it('applies a write with an equal updated (a re-render, not an older version)', async () => {
    const account = freshAccount();
    await set(account, post('/foo.md', 'old render', 5));
    const again = await set(account, post('/foo.md', 'new render', 5));
    expect(again.applied).toBe(true);
    expect(again.entry.html).toBe('new render');
  });

  it('keeps created from the first write and takes it from the passed now', async () => {
    const account = freshAccount();
    const first = await set(account, post('/foo.md', 'A', 10), { now: 1_000 });
    const second = await set(account, post('/foo.md', 'B', 20, '/Foo.md'), { now: 2_000 });
    expect(first.entry.created).toBe(1_000);
    expect(second.entry).toEqual({ id: first.entry.id, path: '/Foo.md', title: '/foo.md', html: 'B', created: 1_000, updated: 20 });
  });

  it('uses the injected clock and id source for a new entry only', async () => {
    const account = freshAccount();
    let ids = 0;
    const seeded = new EntryStore(redis, { newId: () => `id-${++ids}`, clock: () => 42 });
    const first = await through(seeded, redis, account, post('/a.md', 'A', 1));
    const second = await through(seeded, redis, account, post('/a.md', 'B', 2));
    expect(first.entry).toMatchObject({ id: 'id-1', created: 42 });
    // A fresh id is offered on every call; the script ignores it once the path has one.
    expect(second.entry.id).toBe('id-1');
  });

  it('round-trips real timestamps and awkward content exactly through Lua', async () => {
    const account = freshAccount();
    const html = '<p>"quotes" \\ back/slash\n\ttab </script> émoji 🎉 \u0000 nul</p>';
    const updated = 1_712_345_678_901;
    const { entry } = await set(account, { pathLower: '/ünï/çødé.md', path: '/Ünï/Çødé.md', title: 'Tïtle "x"', html, updated }, { now: 99_999_999_999_999 });
    expect(await store.get(account, '/ünï/çødé.md')).toEqual(entry);
    expect(entry).toMatchObject({ html, updated, created: 99_999_999_999_999, title: 'Tïtle "x"', path: '/Ünï/Çødé.md' });
  });

  it('refuses inputs that would break the store instead of corrupting it', async () => {
    const account = freshAccount();
    await expect(set(account, post('foo.md', 'A', 1))).rejects.toThrow(InvalidEntryInputError);
    await expect(set(account, post('/foo.md', 'A', 1.5))).rejects.toThrow(InvalidEntryInputError);
    // cjson keeps 14 significant digits; a larger integer would silently change inside Lua.
    await expect(set(account, post('/foo.md', 'A', 1e14))).rejects.toThrow(InvalidEntryInputError);
    await expect(set(account, post('/foo.md', 'A', 1), { now: -1 })).rejects.toThrow(InvalidEntryInputError);
    expect(await store.count(account)).toBe(0);
  });

  it('ends with the newest content whatever order versions arrive in (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        async (versions, replays) => {
          const account = freshAccount();
          // Replays re-send versions already sent, as a retried sync would.
          const sends = [...versions, ...replays.map((i) => versions[i % versions.length]!)];
          const ids = new Set<string>();
          for (const updated of sends) ids.add((await set(account, post('/p.md', `v${updated}`, updated))).entry.id);
          expect(ids.size).toBe(1);
          expect((await store.get(account, '/p.md'))?.html).toBe(`v${Math.max(...versions)}`);
          expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
        },
      ),
      { numRuns: 40 },
    );
  });

  it('keeps the id of an entry renamed to this path', async () => {
    const account = freshAccount();
    const { entry } = await set(account, post('/a.md', 'A', 1), { now: 5 });
    await store.rename(account, '/a.md', { pathLower: '/b.md', path: '/b.md' });
    const again = await set(account, post('/b.md', 'B', 2));
    expect(again).toMatchObject({ applied: true, created: false, entry: { id: entry.id, created: 5, html: 'B' } });
    expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
  });
});

describe('set under real concurrency', () => {
  const CONNECTIONS = 10;
  const ROUNDS = 30;
  let clients: Redis[] = [];

  beforeAll(async () => {
    clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => openRedis(server.url)));
  });
  afterAll(() => {
    for (const client of clients) client.disconnect();
  });

  type SetFn = (client: Redis, account: string, write: EntryWrite) => Promise<SetResult>;

  /**
   * Every round, each connection writes the same path at once with a different `updated`, in a
   * shuffled order. Returns what went wrong, so the same race can be aimed at a naive store.
   */
  async function race(account: string, set: SetFn, pathPrefix: string): Promise<string[]> {
    const problems: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const pathLower = `${pathPrefix}/post-${round}.md`;
      const versions = shuffle(Array.from({ length: CONNECTIONS }, (_, i) => i + 1));
      const results = await Promise.all(
        clients.map((client, i) => set(client, account, post(pathLower, `v${versions[i]}`, versions[i]!))),
      );
      const ids = new Set(results.map((r) => r.entry.id));
      if (ids.size !== 1) problems.push(`${pathLower}: callers were told ${ids.size} different ids`);
      const creators = results.filter((r) => r.created).length;
      if (creators !== 1) problems.push(`${pathLower}: ${creators} callers created the entry`);
      const stored = await new EntryStore(redis).get(account, pathLower);
      if (stored?.html !== `v${CONNECTIONS}`) problems.push(`${pathLower}: stored ${stored?.html}, newest was v${CONNECTIONS}`);
      if (stored && !ids.has(stored.id)) problems.push(`${pathLower}: stored id was never returned`);
    }
    const counts = await storedCounts(account);
    if (counts.ids !== ROUNDS || counts.entries !== ROUNDS) {
      problems.push(`expected ${ROUNDS} ids and entries, found ${counts.ids} ids and ${counts.entries} entries`);
    }
    return problems;
  }

  const scriptedSet: SetFn = (client, account, write) => new EntryStore(client).set(account, write);

  it('gives each path exactly one id and keeps the newest content', async () => {
    expect(await race(freshAccount(), scriptedSet, '/race')).toEqual([]);
  });

  it('does the same when the entries are set with their downloads\' completions', async () => {
    const withDownload = SET_PATHS[1]![1];
    expect(await race(freshAccount(), (client, account, write) => withDownload(new EntryStore(client), client, account, write), '/race-download')).toEqual([]);
  });

  /**
   * Why the race above means something: a naive store reads the id, then writes in a second
   * round trip. All ten connections send their HGET in the same tick, so every one of them sees
   * "no id" before any HSET lands; each mints its own id (orphaned entries, callers disagreeing on
   * the id), and whichever write lands last wins even if it is the oldest. The same race against
   * such a store must report problems, or the race is not exercising anything.
   */
  it('catches a naive read-then-write store (the race has teeth)', async () => {
    const naiveSet: SetFn = async (client, account, write) => {
      const keys = accountKeys(account);
      const existingId = await client.hget(keys.entryIds, write.pathLower);
      const storedJson = existingId ? await client.hget(keys.entries, existingId) : null;
      const stored = storedJson ? (JSON.parse(storedJson) as SetResult['entry']) : null;
      if (stored && stored.updated > write.updated) return { entry: stored, applied: false, created: false };
      const entry = { id: stored?.id ?? randomUUID(), path: write.path, title: write.title, html: write.html, created: stored?.created ?? 0, updated: write.updated };
      await client.hset(keys.entryIds, write.pathLower, entry.id);
      await client.hset(keys.entries, entry.id, JSON.stringify(entry));
      return { entry, applied: true, created: stored === null };
    };
    const problems = await race(freshAccount(), naiveSet, '/naive');
    // In practice every round fails on every count; one split id is enough to prove the point.
    expect(problems.some((p) => p.includes('different ids'))).toBe(true);
  });

  it('keeps the newest content when racing updates of existing entries', async () => {
    const account = freshAccount();
    const pathLower = '/existing.md';
    const { entry: original } = await store.set(account, post(pathLower, 'v0', 0));
    for (let round = 0; round < ROUNDS; round++) {
      const base = (round + 1) * 100;
      const versions = shuffle(Array.from({ length: CONNECTIONS }, (_, i) => base + i));
      const results = await Promise.all(
        clients.map((client, i) => new EntryStore(client).set(account, post(pathLower, `v${versions[i]}`, versions[i]!))),
      );
      expect(new Set(results.map((r) => r.entry.id))).toEqual(new Set([original.id]));
      expect(results.some((r) => r.created)).toBe(false);
      expect((await store.get(account, pathLower))?.html).toBe(`v${base + CONNECTIONS - 1}`);
    }
    expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
  });
});

describe('rename', () => {
  it('moves the entry, keeping id, created, updated and html; the old path is gone', async () => {
    const account = freshAccount();
    const { entry } = await store.set(account, post('/drafts/hello.md', 'H', 7, '/Drafts/Hello.md'), { now: 3 });
    const moved = await store.rename(account, '/drafts/hello.md', { pathLower: '/posts/hello.md', path: '/Posts/Hello.md' });
    expect(moved).toEqual({ ...entry, path: '/Posts/Hello.md' });
    expect(await store.get(account, '/drafts/hello.md')).toBeNull();
    expect(await store.get(account, '/posts/hello.md')).toEqual(moved);
    expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
  });

  it('is a no-op returning null when replayed after it already happened', async () => {
    const account = freshAccount();
    await store.set(account, post('/a.md', 'A', 1));
    const to = { pathLower: '/b.md', path: '/B.md' };
    const moved = await store.rename(account, '/a.md', to);
    expect(await store.rename(account, '/a.md', to)).toBeNull();
    expect(await store.list(account)).toEqual([moved]);
  });

  it('returns null and changes nothing when the source has no entry', async () => {
    const account = freshAccount();
    const { entry } = await store.set(account, post('/b.md', 'B', 1));
    expect(await store.rename(account, '/missing.md', { pathLower: '/b.md', path: '/b.md' })).toBeNull();
    expect(await store.list(account)).toEqual([entry]);
  });

  it('drops a different entry already at the destination (Dropbox says the moved file is there now)', async () => {
    const account = freshAccount();
    const { entry: moving } = await store.set(account, post('/a.md', 'A', 1));
    await store.set(account, post('/b.md', 'B', 2));
    const moved = await store.rename(account, '/a.md', { pathLower: '/b.md', path: '/b.md' });
    expect(moved?.id).toBe(moving.id);
    expect(await store.list(account)).toEqual([{ ...moving, path: '/b.md' }]);
    expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
  });

  it('handles a case-only rename (same path_lower, new display path)', async () => {
    const account = freshAccount();
    const { entry } = await store.set(account, post('/hello.md', 'H', 1, '/hello.md'));
    const moved = await store.rename(account, '/hello.md', { pathLower: '/hello.md', path: '/Hello.md' });
    expect(moved).toEqual({ ...entry, path: '/Hello.md' });
    expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
  });

  it('keeps the id when the moved file is then re-set at its new path', async () => {
    const account = freshAccount();
    const { entry } = await store.set(account, post('/a.md', 'A', 1));
    await store.rename(account, '/a.md', { pathLower: '/b.md', path: '/b.md' });
    const { entry: updated } = await store.set(account, post('/b.md', 'B', 2));
    expect(updated.id).toBe(entry.id);
  });
});

describe('drop and dropUnder', () => {
  it('drops one entry, idempotently', async () => {
    const account = freshAccount();
    await store.set(account, post('/a.md', 'A', 1));
    const { entry: kept } = await store.set(account, post('/b.md', 'B', 1));
    expect(await store.drop(account, '/a.md')).toBe(1);
    expect(await store.drop(account, '/a.md')).toBe(0);
    expect(await store.list(account)).toEqual([kept]);
    expect(await storedCounts(account)).toEqual({ ids: 1, entries: 1 });
  });

  it('drops only what is at or under the folder: /a never covers /ab.md or /a.md', async () => {
    const account = freshAccount();
    for (const path of ['/a/x.md', '/a/b/y.md', '/a/b/c/z.md', '/ab.md', '/a.md', '/ab/x.md', '/b/a/x.md']) {
      await store.set(account, post(path, path, 1));
    }
    expect(await store.dropUnder(account, '/a')).toBe(3);
    expect(await store.dropUnder(account, '/a')).toBe(0);
    expect((await store.list(account)).map((e) => e.path)).toEqual(['/a.md', '/ab.md', '/ab/x.md', '/b/a/x.md']);
    expect(await storedCounts(account)).toEqual({ ids: 4, entries: 4 });
  });

  it('treats pattern characters in folder names literally', async () => {
    const account = freshAccount();
    for (const path of ['/a.b%(x)/post.md', '/aXb%(x)/post.md', '/a.b%(x)y/post.md']) {
      await store.set(account, post(path, path, 1));
    }
    expect(await store.dropUnder(account, '/a.b%(x)')).toBe(1);
    expect(await store.count(account)).toBe(2);
  });

  it('refuses to drop the root or a path without a leading slash', async () => {
    const account = freshAccount();
    await store.set(account, post('/a.md', 'A', 1));
    await expect(store.dropUnder(account, '/')).rejects.toThrow(InvalidEntryInputError);
    await expect(store.dropUnder(account, '')).rejects.toThrow(InvalidEntryInputError);
    await expect(store.drop(account, 'a.md')).rejects.toThrow(InvalidEntryInputError);
    expect(await store.count(account)).toBe(1);
  });
});

describe('get, list and count', () => {
  it('lists entries sorted by path_lower and counts them', async () => {
    const account = freshAccount();
    for (const [pathLower, path] of [['/posts/b.md', '/Posts/B.md'], ['/a.md', '/A.md'], ['/posts/a.md', '/posts/a.md'], ['/z.txt', '/z.txt']] as const) {
      await store.set(account, post(pathLower, pathLower, 1, path));
    }
    expect((await store.list(account)).map((e) => e.path)).toEqual(['/A.md', '/posts/a.md', '/Posts/B.md', '/z.txt']);
    expect(await store.count(account)).toBe(4);
  });

  it('answers null, [] and 0 for an account without entries', async () => {
    const account = freshAccount();
    expect(await store.get(account, '/nothing.md')).toBeNull();
    expect(await store.list(account)).toEqual([]);
    expect(await store.count(account)).toBe(0);
  });
});

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
