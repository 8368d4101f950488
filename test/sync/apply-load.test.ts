import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { runScript } from '../../src/redis/scripts.js';
import { chooseIndexRead, readIndex, type ApplyReadState, type IndexView } from '../../src/sync/index-reads.js';
import type { DownloadItem, ListedEntry, ListedFile, LocalRecord } from '../../src/sync/records.js';
import { SyncStore, type ApplyInput } from '../../src/sync/sync-store.js';
import { applyOutcome, randomIndexCase, type Index } from '../support/index-cases.js';
import { startTestRedisClient } from '../support/redis-server.js';

/**
 * apply-load.lua against a real redis-server: it reads exactly the records index-reads.ts (the spec,
 * proven equivalent to the whole index in test/index-reads.test.ts) says, and on a big account a
 * one-file change costs a handful of records instead of the whole index.
 */
let redis: Redis;
let stopRedis: () => Promise<void>;
let store: SyncStore;
let accountCounter = 0;

beforeAll(async () => {
  ({ redis, stop: stopRedis } = await startTestRedisClient());
  store = new SyncStore(redis);
});
afterAll(() => stopRedis());

/** Stores a batch and an index as the engine does (listing-save-page, changes-commit, account-link). */
async function store_(state: ApplyReadState, index: IndexView): Promise<string> {
  const account = `dbid:apply-load-${++accountCounter}`;
  const k = accountKeys(account);
  const write = redis.multi();
  const hash = <T>(key: string, map: ReadonlyMap<string, T>, encode: (value: T) => string) => {
    if (map.size) write.hset(key, ...[...map].flatMap(([field, value]) => [field, encode(value)]));
  };
  hash(k.files, index.files, (record) => JSON.stringify(record));
  hash(k.fileIds, index.fileIds, (path) => path);
  hash(k.ignored, index.ignored, (item) => JSON.stringify(item));
  hash(k.queue, index.queue, (item) => JSON.stringify(item));
  if (state.entries.length) write.rpush(k.changes, ...state.entries.map((entry) => JSON.stringify(entry)));
  // Any value stands for a listed page here: the read only asks whether there is one.
  if (state.pageId !== null) write.set(k.pageCursor, state.pageId);
  const small = { mode: state.mode, ignoreRules: state.ignoreRules, ignore: state.ignore };
  for (const [field, value] of Object.entries(small)) if (value !== null) write.hset(k.mailbox, field, value);
  write.set(k.credentials, '{}');
  await write.exec();
  return account;
}

/** The loaded part of the index, in the whole index's order (Redis returns fields in its own order). */
const inIndexOrder = (loaded: ApplyInput['index'], index: IndexView) => readIndex(index, {
  scope: 'targeted', files: new Set(loaded.files.keys()), fileIds: new Set(loaded.fileIds.keys()), queue: new Set(loaded.queue.keys()), ignored: new Set(loaded.ignored.keys()),
});
const sortedMap = <T>(map: ReadonlyMap<string, T>) => [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

describe('apply-load.lua', () => {
  it('reads exactly the records index-reads.ts chooses, on the same random cases', async () => {
    const scopes = { none: 0, whole: 0, targeted: 0 };
    for (let seed = 1; seed <= 1500; seed++) {
      const { state, index } = randomIndexCase(seed);
      const loaded = await store.loadApplyInput(await store_(state, index));
      const expected = chooseIndexRead(state, index);
      scopes[expected.scope]++;
      expect(loaded.indexScope, `seed ${seed}`).toBe(expected.scope);
      const part = readIndex(index, expected);
      for (const name of ['files', 'fileIds', 'queue', 'ignored'] as const) {
        expect(sortedMap(loaded.index[name] as ReadonlyMap<string, unknown>), `seed ${seed}: ${name}`).toEqual(sortedMap(part[name] as ReadonlyMap<string, unknown>));
      }
      expect(loaded.batch.entries).toEqual(state.entries);
    }
    expect(scopes.targeted).toBeGreaterThan(450);
    expect(scopes.whole).toBeGreaterThan(150);
    expect(scopes.none).toBeGreaterThan(0);
  }, 120_000);

  it('plans as on the whole index for paths Lua and JavaScript decode differently (NUL, lone surrogates, U+FFFD)', async () => {
    const record = (path: string, id: string): LocalRecord => ({
      kind: 'file', pathLower: path, pathDisplay: path, id, rev: 'r1', contentHash: 'h1', size: 1, clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z',
    });
    const odd = ['/a\u0000b', '/a\ud800', '/a\ufffd', '/\udc00/x', '/\ufffd/x', '/é'];
    const files = new Map<string, LocalRecord>([['/\ufffd', { kind: 'folder', pathLower: '/\ufffd', pathDisplay: '/\ufffd', id: 'id:folder' }]]);
    for (const [n, path] of odd.entries()) if (!path.includes('\udc00')) files.set(path, record(path, `id:${n}`));
    const index: Index = { files, fileIds: new Map([...files.values()].map((r) => [r.id, r.pathLower])), queue: new Map(), ignored: new Map() };
    for (const path of odd) {
      for (const entry of [
        { tag: 'deleted', pathLower: path, pathDisplay: path, name: 'x' },
        { tag: 'file', pathLower: path, pathDisplay: path, name: 'x', id: 'id:new', rev: 'r2', contentHash: 'h2', size: 1, clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z', isDownloadable: true },
      ] as ListedEntry[]) {
        const state: ApplyReadState = { entries: [entry], pageId: 'c1', mode: 'continue', ignoreRules: '[]', ignore: '[]' };
        const loaded = await store.loadApplyInput(await store_(state, index));
        // What Redis holds is what JavaScript reads back from it (a lone surrogate is stored as U+FFFD).
        const stored = (await store.loadApplyInput(await store_({ ...state, ignoreRules: null, mode: 'full' }, index))).index;
        expect(loaded.batch.entries).toEqual(state.entries);
        expect(applyOutcome(state, inIndexOrder(loaded.index, stored)), JSON.stringify(path)).toStrictEqual(applyOutcome(state, stored));
      }
    }
  });
});

describe('the apply step on a big account', () => {
  const FOLDERS = 50;
  const PER_FOLDER = 100;
  const folderRecord = (path: string): LocalRecord => ({ kind: 'folder', pathLower: path, pathDisplay: path, id: `id:${path}/` });
  const fileRecord = (path: string): LocalRecord => ({
    kind: 'file', pathLower: path, pathDisplay: path, id: `id:${path}`, rev: 'r1', contentHash: 'h1', size: 1, clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z',
  });
  const item = (path: string): DownloadItem => { const { kind: _k, ...rest } = fileRecord(path) as LocalRecord & { kind: 'file' }; return rest; };
  const listed = (path: string, contentHash = 'h2'): ListedFile => ({
    tag: 'file', pathLower: path, pathDisplay: path, name: path.slice(path.lastIndexOf('/') + 1), id: `id:${path}`, rev: 'r2', contentHash, size: 1,
    clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z', isDownloadable: true,
  });
  const deletion = (path: string): ListedEntry => ({ tag: 'deleted', pathLower: path, pathDisplay: path, name: path.slice(path.lastIndexOf('/') + 1) });
  /** 5,000 files in 50 folders, 20 ignored ones under `/.git`, nothing queued. */
  const bigIndex = (): Index => {
    const files = new Map<string, LocalRecord>();
    for (let f = 0; f < FOLDERS; f++) {
      files.set(`/f${f}`, folderRecord(`/f${f}`));
      for (let n = 0; n < PER_FOLDER; n++) files.set(`/f${f}/${n}.md`, fileRecord(`/f${f}/${n}.md`));
    }
    const ignored = new Map(Array.from({ length: 20 }, (_, n) => [`/.git/${n}`, item(`/.git/${n}`)] as const));
    return { files, fileIds: new Map([...files.values()].map((r) => [r.id, r.pathLower])), ignored, queue: new Map() };
  };
  const load = async (entries: ListedEntry[], more: Partial<ApplyReadState> = {}) => {
    const index = bigIndex();
    const state: ApplyReadState = { entries, pageId: 'c1', mode: 'continue', ignoreRules: '[]', ignore: '[]', ...more };
    const loaded = await store.loadApplyInput(await store_(state, index));
    // However little was read, the plan is the one the whole index gives.
    expect(applyOutcome(state, inIndexOrder(loaded.index, index))).toStrictEqual(applyOutcome(state, index));
    const { files, fileIds, queue, ignored } = loaded.index;
    return { scope: loaded.indexScope, files: files.size, fileIds: fileIds.size, queue: queue.size, ignored: ignored.size };
  };

  it('reads a handful of its 5,050 records for a one-file change, a new file or a deleted file', async () => {
    expect(await load([listed('/f7/42.md')])).toEqual({ scope: 'targeted', files: 2, fileIds: 2, queue: 0, ignored: 0 });
    expect(await load([listed('/f7/new.md')])).toEqual({ scope: 'targeted', files: 1, fileIds: 1, queue: 0, ignored: 0 });
    expect(await load([listed('/new/deep/file.md')])).toEqual({ scope: 'targeted', files: 0, fileIds: 0, queue: 0, ignored: 0 });
    expect(await load([deletion('/f7/42.md')])).toEqual({ scope: 'targeted', files: 2, fileIds: 2, queue: 0, ignored: 0 });
    // a rename: the old path's deletion and the new path, in two folders
    expect(await load([deletion('/f7/42.md'), { ...listed('/f9/renamed.md', 'h1'), id: 'id:/f7/42.md' }])).toEqual({ scope: 'targeted', files: 3, fileIds: 3, queue: 0, ignored: 0 });
    // what the ignored hash holds under a listed path (an ignored folder has no record of its own)
    expect(await load([deletion('/.git')])).toEqual({ scope: 'targeted', files: 0, fileIds: 0, queue: 0, ignored: 20 });
  });

  it('reads the whole index when the batch needs it: a deleted folder, a full listing, changed ignore rules', async () => {
    const whole = { scope: 'whole', files: 5050, fileIds: 5050, queue: 0, ignored: 20 };
    expect(await load([deletion('/f7')])).toEqual(whole);
    expect(await load([listed('/f7')])).toEqual(whole);
    expect(await load([listed('/f7/42.md')], { mode: 'full' })).toEqual(whole);
    expect(await load([listed('/f7/42.md')], { ignore: '["drafts"]' })).toEqual(whole);
    expect(await load([], { pageId: null })).toEqual({ scope: 'none', files: 0, fileIds: 0, queue: 0, ignored: 0 });
  });

  it('reads the whole index rather than fail on an entry it cannot decode or that has no path', async () => {
    const index = bigIndex();
    const state: ApplyReadState = { entries: [listed('/f7/42.md')], pageId: 'c1', mode: 'continue', ignoreRules: '[]', ignore: '[]' };
    // no path; a lone surrogate, which JSON.parse takes and cjson refuses
    for (const line of ['{"tag":"deleted"}', '{"tag":"deleted","pathLower":"/f7/\\ud800"}']) {
      const k = accountKeys(await store_(state, index));
      await redis.rpush(k.changes, line);
      const [, , , , files, , , , , scope] = await runScript<[unknown, unknown, unknown, unknown, string[], unknown, unknown, unknown, unknown, string]>(
        redis, 'applyLoad', [k.changes, k.mailbox, k.pageCursor, k.files, k.fileIds, k.ignored, k.queue, k.applyRules]);
      expect([scope, files.length / 2], line).toEqual(['whole', 5050]);
    }
  });
});
