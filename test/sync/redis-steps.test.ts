import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AccountStore } from '../../src/accounts/account-store.js';
import { EntryStore } from '../../src/entries/entry-store.js';
import { Mailbox } from '../../src/mailbox/mailbox.js';
import { accountKeys } from '../../src/redis/keys.js';
import type { DownloadItem, ListedEntry } from '../../src/sync/records.js';
import { listedPageId, storedCursor } from '../../src/sync/stored-cursor.js';
import { HANDED_OVER_QUEUE_LIMIT, SyncStore } from '../../src/sync/sync-store.js';
import { startTestRedisClient, type TestRedis } from '../support/redis-server.js';

/** The atomic Redis steps the actor relies on, each against a real redis-server. */
let server: TestRedis;
let redis: Redis;
let stopRedis: () => Promise<void>;
let mailbox: Mailbox;
let store: SyncStore;
let accounts: AccountStore;
let account: string;
let counter = 0;

beforeAll(async () => {
  ({ server, redis, stop: stopRedis } = await startTestRedisClient());
  mailbox = new Mailbox(redis);
  store = new SyncStore(redis);
  accounts = new AccountStore(redis);
});
afterAll(() => stopRedis());
beforeEach(() => {
  account = `dbid:steps-${++counter}`;
});

const file = (path: string, rev: string): ListedEntry => ({
  tag: 'file', pathLower: path, pathDisplay: path, name: path.slice(1), id: `id:${path}`, rev, contentHash: 'h'.repeat(64), size: 1,
  clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z', isDownloadable: true,
});
const item = (path: string, rev: string): DownloadItem => {
  const { tag: _t, isDownloadable: _d, name: _n, ...rest } = file(path, rev) as Extract<ListedEntry, { tag: 'file' }>;
  return rest;
};

const noIndexChange = { files: { set: [], del: [] }, fileIds: { set: [], del: [] }, queue: { set: [], del: [] }, ignored: { set: [], del: [] } };

describe('the mailbox', () => {
  it('ignores webhooks for accounts that are not linked, and creates nothing for them', async () => {
    expect(await mailbox.markDirty(account)).toBe('unknown');
    expect(await redis.keys(`*${account}*`)).toEqual([]);
  });

  it('wakes an idle account once; later webhooks during the run only set the dirty flag', async () => {
    await accounts.link(account, { accessToken: 't' }, [], 1);
    await mailbox.finishRun(account); // the link's own run ends: idle
    await store.beginListing(account); // (clears the link's dirty flag, as a listing does)
    expect(await mailbox.finishRun(account)).toBe('idle');
    const outcomes = await Promise.all(Array.from({ length: 50 }, () => mailbox.markDirty(account)));
    expect(outcomes.filter((o) => o === 'wake')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'running')).toHaveLength(49);
    expect(await mailbox.read(account)).toMatchObject({ dirty: true, status: 'running' });
  });

  it('ends a run with "again" while dirty, and gives the same answer when the step is replayed', async () => {
    await accounts.link(account, { accessToken: 't' }, [], 1);
    expect(await mailbox.finishRun(account)).toBe('again');
    expect(await mailbox.finishRun(account)).toBe('again'); // replay after a crash: same answer
    await store.beginListing(account); // the next listing clears the flag
    expect(await mailbox.finishRun(account)).toBe('idle');
    expect(await mailbox.read(account)).toMatchObject({ dirty: false, status: 'idle' });
  });

  it('a webhook after the run went idle wakes the actor again (nothing falls between check and idle)', async () => {
    await accounts.link(account, { accessToken: 't' }, [], 1);
    await store.beginListing(account);
    expect(await mailbox.finishRun(account)).toBe('idle');
    expect(await mailbox.markDirty(account)).toBe('wake');
  });
});

describe('listing pages', () => {
  it('saves a page with its cursor once: a replayed save adds no entries', async () => {
    const start = await store.beginListing(account);
    expect(start).toMatchObject({ mode: 'full', from: '' });
    expect(await store.savePage(account, '', 'c1', [file('/a.md', 'r1')])).toBe(true);
    expect(await store.savePage(account, '', 'c1', [file('/a.md', 'r1')])).toBe(false);
    expect(await store.savePage(account, 'c1', 'c2', [file('/b.md', 'r1')])).toBe(true);
    const { batch } = await store.loadApplyInput(account);
    expect(batch.entries.map((e) => e.pathLower)).toEqual(['/a.md', '/b.md']);
    expect(batch.pageId).toBe(listedPageId('c2'));
    // A restart resumes from the last saved page, not from scratch.
    expect(await store.beginListing(account)).toMatchObject({ mode: 'full', from: 'c2' });
  });

  it('keeps a Dropbox cursor as its bytes, a quarter shorter, and lists on from exactly the cursor Dropbox gave', async () => {
    const page1 = 'AAGFHXqUgavlrBd2TBDxKNdV2rnu48QeThbxccGEvaSwiAAIt5-iho9P8EJIIVdSh6RKRNHq-An2lyyjJ34yCOhyBcIa6Gh6tYOko_okZgZTP_Ga0-kqHtm1HaQOQNdOmPPoNwiXB_rflzSLwq6AXi_F';
    const page2 = `${page1.slice(0, -8)}Zm9vYmFy`;
    const start = await store.beginListing(account);
    await store.savePage(account, start.fromStored, page1, [file('/a.md', 'r1')]);
    expect(await store.beginListing(account)).toMatchObject({ mode: 'full', from: page1 }); // resumed mid-listing
    await store.saveLastPage(account, storedCursor(page1), page2, [file('/b.md', 'r1')]);
    const { batch } = await store.loadApplyInput(account);
    expect(await store.commitPlan(account, batch.pageId!, 2, noIndexChange, '[]')).toMatchObject({ committed: true });
    expect(await redis.strlen(accountKeys(account).cursor)).toBe(1 + (page2.length * 3) / 4);
    expect(await store.beginListing(account)).toMatchObject({ mode: 'continue', from: page2 });
  });

  it('lists on from a cursor an older version stored as text, and stores the next one as bytes', async () => {
    const old = 'AAGCmtkBfAAxfYBp8WQUxW5pxUiT8YqEgBZkX5XJcUPP9Jn30T1dEKOkZtTKXzlUHPqNnKmEkXy9CrRDZmfHrnwyl68rwi6oEHVcwa4l8-BT_nHsZ6chH00bnqOZtgWymatxb_Lyh3EL4JlJ_ENLOYje6Y3OWGqOmE3DP_RfbV1Z-KBFLUqO2ARoQi9MfavtEi8';
    const next = `${old.slice(0, -3)}AAA`;
    await redis.set(accountKeys(account).cursor, old); // as the conversion from the two-hash layout leaves it
    const start = await store.beginListing(account);
    expect(start).toMatchObject({ mode: 'continue', from: old });
    expect(await store.saveLastPage(account, start.fromStored, next, [file('/a.md', 'r2')])).toMatchObject({ saved: true });
    const { batch } = await store.loadApplyInput(account);
    expect(batch.entries).toHaveLength(1);
    expect(await store.commitPlan(account, batch.pageId!, 1, noIndexChange, '[]')).toMatchObject({ committed: true });
    expect(await redis.strlen(accountKeys(account).cursor)).toBe(1 + Math.floor((next.length * 3) / 4));
    expect(await store.beginListing(account)).toMatchObject({ mode: 'continue', from: next });
  });

  it('commits once, moves the cursor, and continues from it next time', async () => {
    await store.beginListing(account);
    await store.savePage(account, '', 'c1', [file('/a.md', 'r1')]);
    const index = { files: { set: [], del: [] }, fileIds: { set: [], del: [] }, queue: { set: [['/a.md', item('/a.md', 'r1')]] as [string, DownloadItem][], del: [] }, ignored: { set: [], del: [] } };
    expect(await store.commitPlan(account, listedPageId('c1'), 1, index, '[]')).toEqual({ committed: true, queue: [item('/a.md', 'r1')] });
    expect(await store.commitPlan(account, listedPageId('c1'), 1, index, '[]')).toEqual({ committed: false });
    expect(((await store.loadApplyInput(account)).batch).entries).toEqual([]);
    expect(await store.pendingCount(account)).toBe(1);
    expect(await store.beginListing(account)).toMatchObject({ mode: 'continue', from: 'c1' });
  });

  it('hands back the whole queue as the commit left it, earlier runs\' items too, until it is too long to', async () => {
    const none = { set: [], del: [] };
    await store.beginListing(account);
    await store.savePage(account, '', 'c1', [file('/a.md', 'r1'), file('/b.md', 'r1')]);
    const first = { files: none, fileIds: none, ignored: none, queue: { set: [['/a.md', item('/a.md', 'r1')], ['/b.md', item('/b.md', 'r1')]] as [string, DownloadItem][], del: [] } };
    await store.commitPlan(account, listedPageId('c1'), 2, first, '[]');
    await store.beginListing(account);
    await store.savePage(account, 'c1', 'c2', [file('/c.md', 'r1')]);
    const second = { files: none, fileIds: none, ignored: none, queue: { set: [['/c.md', item('/c.md', 'r1')]] as [string, DownloadItem][], del: ['/a.md'] } };
    const { queue } = await store.commitPlan(account, listedPageId('c2'), 1, second, '[]');
    expect(queue?.map((q) => q.pathLower).sort()).toEqual(['/b.md', '/c.md']);

    await store.beginListing(account);
    const many = Array.from({ length: HANDED_OVER_QUEUE_LIMIT }, (_, i) => file(`/many/${i}.md`, 'r1'));
    await store.savePage(account, 'c2', 'c3', many);
    const third = { files: none, fileIds: none, ignored: none, queue: { set: many.map((f) => [f.pathLower, item(f.pathLower, 'r1')]) as [string, DownloadItem][], del: [] } };
    expect(await store.commitPlan(account, listedPageId('c3'), many.length, third, '[]')).toEqual({ committed: true }); // the download step reads it itself
    expect(await store.pendingCount(account)).toBe(HANDED_OVER_QUEUE_LIMIT + 2);
  });

  it('a reset drops progress and unapplied changes; the next listing is a full one', async () => {
    await store.beginListing(account);
    await store.savePage(account, '', 'c1', [file('/a.md', 'r1')]);
    await store.commitPlan(account, listedPageId('c1'), 1, { files: { set: [], del: [] }, fileIds: { set: [], del: [] }, queue: { set: [], del: [] }, ignored: { set: [], del: [] } }, '[]');
    await store.beginListing(account);
    await store.savePage(account, 'c1', 'c2', [file('/b.md', 'r1')]);
    await store.resetListing(account);
    expect(((await store.loadApplyInput(account)).batch).entries).toEqual([]);
    expect(await store.beginListing(account)).toMatchObject({ mode: 'full', from: '' });
  });
});

describe('the link', () => {
  it('keeps its settings in the mailbox (no field for no patterns), and an unlink forgets them but not the listing', async () => {
    const k = accountKeys(account);
    await accounts.link(account, { accessToken: 't' }, ['/drafts/**'], 1_700_000_000_000);
    expect(await redis.hmget(k.mailbox, 'ignore', 'linkedAt')).toEqual(['["/drafts/**"]', '1700000000000']);
    await accounts.link(account, { accessToken: 't2' }, [], 1_800_000_000_000);
    expect(await redis.hmget(k.mailbox, 'ignore', 'linkedAt')).toEqual([null, '1700000000000']); // linked since the first link
    expect(await accounts.get(account)).toMatchObject({ ignore: [], linkedAt: 1_700_000_000_000, credentials: { accessToken: 't2' } });

    await store.beginListing(account);
    await store.savePage(account, '', 'c1', [file('/a.md', 'r1')]);
    await store.commitPlan(account, listedPageId('c1'), 1, noIndexChange, '[]');
    expect(await redis.hexists(k.mailbox, 'mode')).toBe(0); // continue: no field

    expect(await accounts.unlink(account)).toBe(true);
    expect(await redis.exists(k.credentials)).toBe(0);
    expect(await redis.hmget(k.mailbox, 'ignore', 'linkedAt')).toEqual([null, null]);
    expect(await accounts.get(account)).toBeNull();
    expect(await mailbox.markDirty(account)).toBe('unknown');
    expect(await mailbox.requestResync(account)).toBe('unknown');

    // A re-link carries on from the cursor the unlink kept.
    await accounts.link(account, { accessToken: 't3' }, [], 1_900_000_000_000);
    expect(await redis.hget(k.mailbox, 'linkedAt')).toBe('1900000000000');
    expect(await store.beginListing(account)).toMatchObject({ mode: 'continue', from: 'c1' });
  });

  it('a resync asks the next listing to start over, even past a page listed and not applied', async () => {
    await accounts.link(account, { accessToken: 't' }, [], 1);
    await store.beginListing(account);
    await store.savePage(account, '', 'c1', []);
    await store.commitPlan(account, listedPageId('c1'), 0, noIndexChange, '[]');
    await store.beginListing(account);
    await store.savePage(account, 'c1', 'c2', [file('/a.md', 'r2')]);
    expect(await mailbox.requestResync(account)).toBe('running');
    expect(await store.beginListing(account)).toMatchObject({ mode: 'full', from: '' });
    expect(await redis.exists(accountKeys(account).pageCursor)).toBe(0);
    expect(await redis.hexists(accountKeys(account).mailbox, 'resync')).toBe(0);
  });
});

describe('the download queue', () => {
  async function queue(items: DownloadItem[]): Promise<void> {
    await store.beginListing(account);
    await store.savePage(account, '', 'c1', []);
    await store.commitPlan(account, listedPageId('c1'), 0, { files: { set: [], del: [] }, fileIds: { set: [], del: [] }, queue: { set: items.map((i) => [i.pathLower, i] as [string, DownloadItem]), del: [] }, ignored: { set: [], del: [] } }, '[]');
  }

  it('a finished download leaves the queue and is recorded in the index', async () => {
    await queue([item('/a.md', 'r1')]);
    expect(await store.completeDownload(account, item('/a.md', 'r1'))).toEqual({ completed: true, entry: null });
    expect(await store.pendingCount(account)).toBe(0);
    expect(await store.localRecord(account, '/a.md')).toMatchObject({ kind: 'file', rev: 'r1' });
  });

  it('a download superseded by a newer listing is not recorded and the newer item stays queued', async () => {
    await queue([item('/a.md', 'r2')]);
    expect(await store.completeDownload(account, item('/a.md', 'r1'))).toEqual({ completed: false, entry: null });
    expect(await store.queuedItem(account, '/a.md')).toMatchObject({ rev: 'r2' });
    expect(await store.localRecord(account, '/a.md')).toBeNull();
  });

  describe('with the entry of a post, in the same script', () => {
    const entries = new EntryStore(null as unknown as Redis); // only builds the script's arguments
    const write = (updated: number) => ({ pathLower: '/a.md', path: '/a.md', title: 'A', html: `<p>${updated}</p>`, updated });

    it('records the file, dequeues it and sets the entry', async () => {
      await queue([item('/a.md', 'r1')]);
      const done = await store.completeDownload(account, item('/a.md', 'r1'), entries.setCall(account, write(1), { now: 7 }));
      expect(done).toMatchObject({ completed: true, entry: { applied: true, created: true, entry: { path: '/a.md', html: '<p>1</p>', created: 7, updated: 1 } } });
      expect(await store.pendingCount(account)).toBe(0);
      expect(await store.localRecord(account, '/a.md')).toMatchObject({ kind: 'file', rev: 'r1' });
      expect(await new EntryStore(redis).get(account, '/a.md')).toEqual(done.entry!.entry);
    });

    it('is harmless when replayed: the same id, one entry, the file recorded once', async () => {
      await queue([item('/a.md', 'r1')]);
      const first = await store.completeDownload(account, item('/a.md', 'r1'), entries.setCall(account, write(1), { now: 7 }));
      const replay = await store.completeDownload(account, item('/a.md', 'r1'), entries.setCall(account, write(1), { now: 8 }));
      expect(replay).toMatchObject({ completed: true, entry: { created: false, entry: first.entry!.entry } });
      expect(await redis.hlen(accountKeys(account).entries)).toBe(1);
      expect(await redis.hgetall(accountKeys(account).fileIds)).toEqual({ 'id:/a.md': '/a.md' });
    });

    it('superseded by a newer listing: not recorded, the newer item stays queued, the entry set as before', async () => {
      await queue([item('/a.md', 'r2')]);
      const done = await store.completeDownload(account, item('/a.md', 'r1'), entries.setCall(account, write(1)));
      expect(done).toMatchObject({ completed: false, entry: { applied: true } });
      expect(await store.queuedItem(account, '/a.md')).toMatchObject({ rev: 'r2' });
      expect(await store.localRecord(account, '/a.md')).toBeNull();
    });

    it('reports an older version than the stored entry as not applied, and still completes the download', async () => {
      await queue([item('/a.md', 'r1')]);
      await new EntryStore(redis).set(account, write(5));
      const done = await store.completeDownload(account, item('/a.md', 'r1'), entries.setCall(account, write(1)));
      expect(done).toMatchObject({ completed: true, entry: { applied: false, entry: { updated: 5 } } });
      expect(await store.pendingCount(account)).toBe(0);
    });

    it('refused as a whole for a former owner: no entry, nothing dequeued', async () => {
      await queue([item('/a.md', 'r1')]);
      await redis.hset(accountKeys(account).fence, 'fence', '2');
      const formerOwner = new SyncStore(redis, () => '1');
      await expect(formerOwner.completeDownload(account, item('/a.md', 'r1'), entries.setCall(account, write(1)))).rejects.toThrow(/^FENCED/);
      expect(await store.pendingCount(account)).toBe(1);
      expect(await redis.exists(accountKeys(account).entries, accountKeys(account).entryIds)).toBe(0);
    });
  });
});
