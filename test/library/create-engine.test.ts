import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { createEngine, EntryBuildError, InvalidInputError, type EngineEvent, type EntryBuilder, type MailroomEngine } from '../../src/index.js';
import { openRedis } from '../../src/redis/connection.js';
import { accountKeys, LINKED_ACCOUNTS_KEY } from '../../src/redis/keys.js';
import { useScanEncoding } from '../support/scan-encoding.js';
import { TestRedis } from '../support/redis-server.js';
import { waitUntil } from '../support/sync-harness.js';

/** The library as a host application uses it: no HTTP server, its own entry builder, events. */
let redisServer: TestRedis;
let emulator: RunningEmulator;
let dataDir: string;
let mailroom: MailroomEngine;

/** Only .txt files are posts; the title is the first line, upper-cased; the html one <pre>. */
/** The paths the builder below was handed. */
const built: string[] = [];
const textBuilder: EntryBuilder = {
  isPost: (pathLower) => pathLower.endsWith('.txt'),
  build: ({ path, content }) => {
    built.push(path);
    const text = content.toString('utf8');
    if (text.startsWith('REFUSE')) throw new EntryBuildError(path, 'it asks to be refused');
    return { title: text.split('\n')[0]!.toUpperCase(), html: `<pre>${text.length} bytes</pre>` };
  },
  maxPostBytes: 64,
};

async function idle(accountId: string): Promise<void> {
  await waitUntil(async () => {
    const status = await mailroom.status(accountId);
    return status?.state === 'idle' && !status.dirty && status.pending === 0;
  }, 20_000, `${accountId} to be idle`);
}

beforeAll(async () => {
  redisServer = await TestRedis.start();
  emulator = await startEmulator({ pageLimit: 100 });
  dataDir = mkdtempSync(join(tmpdir(), 'mailroom-lib-'));
  mailroom = await createEngine({
    redisUrl: redisServer.url,
    dataDir,
    dropbox: { apiUrl: emulator.url, callTimeoutMs: 2_000 },
    entryBuilder: textBuilder,
    retryBaseDelayMs: 10,
  });
});

afterAll(async () => {
  await mailroom?.close();
  await emulator?.close();
  await redisServer?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('createEngine', () => {
  it('syncs an account with a custom entry builder and reports fileSynced, entrySet, entryDropped', async () => {
    const account = 'dbid:library';
    emulator.model.addAccount(account, { accessToken: 'tok-lib' });
    emulator.model.writeFile(account, '/notes/hello.txt', 'hello there\nsecond line');
    emulator.model.writeFile(account, '/post.md', '# Markdown is not a post here');

    const synced: EngineEvent<'fileSynced'>[] = [];
    const set: EngineEvent<'entrySet'>[] = [];
    const dropped: EngineEvent<'entryDropped'>[] = [];
    mailroom.on('fileSynced', (e) => { synced.push(e); });
    mailroom.on('entrySet', (e) => { set.push(e); });
    mailroom.on('entryDropped', (e) => { dropped.push(e); });
    // A broken listener (sync throw or async rejection) never breaks the sync.
    const stopBroken = mailroom.on('fileSynced', () => { throw new Error('listener bug'); });
    mailroom.on('entrySet', async () => { throw new Error('async listener bug'); });

    await mailroom.link(account, { accessToken: 'tok-lib' });
    await idle(account);

    expect(synced.map((e) => e.path).sort()).toEqual(['/notes/hello.txt', '/post.md']);
    expect(set).toHaveLength(1);
    expect(set[0]).toMatchObject({ accountId: account, entry: { path: '/notes/hello.txt', title: 'HELLO THERE', html: '<pre>23 bytes</pre>' } });
    const entries = await mailroom.entries(account);
    expect(entries.map((e) => [e.path, e.title])).toEqual([['/notes/hello.txt', 'HELLO THERE']]);
    expect(readFileSync(join(mailroom.folder(account), 'post.md'), 'utf8')).toBe('# Markdown is not a post here');
    stopBroken();

    // A rename keeps the entry (and rebuilds it through the builder); a rename to a non-post drops it.
    emulator.model.move(account, '/notes/hello.txt', '/notes/renamed.txt');
    await mailroom.notify([account]);
    await idle(account);
    const renamed = await mailroom.entries(account);
    expect(renamed.map((e) => [e.path, e.title, e.id])).toEqual([['/notes/renamed.txt', 'HELLO THERE', entries[0]!.id]]);

    emulator.model.remove(account, '/notes/renamed.txt');
    await mailroom.notify([account]);
    await idle(account);
    expect(dropped).toEqual([{ accountId: account, path: '/notes/renamed.txt' }]);
    expect(await mailroom.entries(account)).toEqual([]);

    const status = await mailroom.status(account);
    expect(status).toMatchObject({ accountId: account, state: 'idle', pending: 0, lastError: null, folder: mailroom.folder(account) });
    expect((await mailroom.accounts()).map((a) => a.accountId)).toContain(account);
  });

  it('sets aside a post the builder refuses (EntryBuildError) or one over its maxPostBytes, the latter without handing it over', async () => {
    const account = 'dbid:library-refused';
    emulator.model.addAccount(account, { accessToken: 'tok-lib-r' });
    emulator.model.writeFile(account, '/refused.txt', 'REFUSE me');
    emulator.model.writeFile(account, '/long.txt', 'x'.repeat(65));
    emulator.model.writeFile(account, '/fine.txt', 'fine');
    const setAside: EngineEvent<'fileSetAside'>[] = [];
    mailroom.on('fileSetAside', (e) => { setAside.push(e); });
    // Every field of DropboxCredentials is taken, the access token's expiry too.
    await mailroom.link(account, { accessToken: 'tok-lib-r', accessTokenExpiresAt: Date.now() + 3_600_000 });
    await idle(account);
    expect(setAside.map(({ path, kind, message }) => [path, kind, message]).sort()).toEqual([
      ['/long.txt', 'post', 'it is 65 bytes; a post is at most 64 (the file is in the mirror; its entry is not made or updated until the file changes)'],
      ['/refused.txt', 'post', 'it asks to be refused (the file is in the mirror; its entry is not made or updated until the file changes)'],
    ]);
    expect(built).not.toContain('/long.txt');
    expect((await mailroom.entries(account)).map((e) => e.path)).toEqual(['/fine.txt']);
    expect(readFileSync(join(mailroom.folder(account), 'long.txt'), 'utf8')).toBe('x'.repeat(65));
    expect(await mailroom.status(account)).toMatchObject({ state: 'idle', setAside: 2, lastError: null });
  });

  it('resyncs and unlinks; unknown accounts answer false / null', async () => {
    const account = 'dbid:library-2';
    emulator.model.addAccount(account, { accessToken: 'tok-lib-2' });
    emulator.model.writeFile(account, '/a.txt', 'a');
    await mailroom.link(account, { accessToken: 'tok-lib-2' }, { ignore: ['drafts/**'] });
    await idle(account);
    expect(await mailroom.resync(account)).toBe(true);
    await idle(account);
    expect((await mailroom.entries(account)).map((e) => e.title)).toEqual(['A']);
    expect(await mailroom.unlink(account)).toBe(true);
    expect(await mailroom.status(account)).toBeNull();
    expect(await mailroom.unlink(account)).toBe(false);
    expect(await mailroom.resync('dbid:never-linked')).toBe(false);
  });

  it('pages accounts and entries as the HTTP API does: following `next` reaches all of them, each page sorted', async () => {
    const ids = [1, 2, 3, 4, 5].map((n) => `dbid:library-page-${n}`);
    for (const id of ids) {
      emulator.model.addAccount(id, { accessToken: `tok-${id}` });
      emulator.model.writeFile(id, '/only.txt', `only post of ${id}`);
    }
    const blog = ids[0]!;
    for (const n of [1, 2, 3, 4, 5, 6]) emulator.model.writeFile(blog, `/posts/${n}.txt`, `post ${n}`);
    for (const id of ids) await mailroom.link(id, { accessToken: `tok-${id}` });
    for (const id of ids) await idle(id);
    const redis = await openRedis(redisServer.url);
    try {
      await useScanEncoding(redis, LINKED_ACCOUNTS_KEY, 'set');
      await useScanEncoding(redis, accountKeys(blog).entryIds, 'hash');
    } finally {
      redis.disconnect();
    }

    const walk = async <T>(read: (cursor: string) => Promise<{ items: T[]; next: string | null }>, key: (item: T) => string) => {
      const seen: string[] = [];
      let cursor: string | null = '0';
      let pages = 0;
      while (cursor !== null) {
        const page: { items: T[]; next: string | null } = await read(cursor);
        const keys = page.items.map(key);
        expect(keys).toEqual([...keys].sort());
        seen.push(...keys);
        cursor = page.next;
        pages++;
      }
      return { seen: [...new Set(seen)].sort(), pages };
    };
    const accounts = await walk(async (cursor) => {
      const { accounts: items, next } = await mailroom.accountsPage({ limit: 2, cursor });
      return { items, next };
    }, (status) => status.accountId);
    expect(accounts.pages).toBeGreaterThan(1);
    expect(accounts.seen).toEqual((await mailroom.accounts()).map((status) => status.accountId));
    expect(accounts.seen).toEqual(expect.arrayContaining(ids));

    const entries = await walk(async (cursor) => {
      const { entries: items, next } = await mailroom.entriesPage(blog, { limit: 2, cursor });
      return { items, next };
    }, (entry) => entry.path);
    expect(entries.pages).toBeGreaterThan(1);
    expect(entries.seen).toEqual((await mailroom.entries(blog)).map((entry) => entry.path));
    expect(entries.seen).toHaveLength(7);

    // The first page by default; a state keeps only the accounts in it.
    expect((await mailroom.accountsPage()).accounts.length).toBeGreaterThan(0);
    const idleOnes = await mailroom.accountsPage({ state: 'idle', limit: 1000 });
    expect(idleOnes.accounts.map((status) => status.accountId)).toEqual(expect.arrayContaining(ids));
    expect(idleOnes.accounts.every((status) => status.state === 'idle')).toBe(true);
    expect((await mailroom.accountsPage({ state: 'awaitingRelink', limit: 1000 })).accounts).toEqual([]);
  });

  it.each([
    ['limit 0', { limit: 0 }, /^limit must be a whole number from 1 to 1000/],
    ['limit 1001', { limit: 1001 }, /^limit must be/],
    ['limit 2.5', { limit: 2.5 }, /^limit must be/],
    ['limit "5", a string', { limit: '5' }, /^limit must be/],
    ['limit null', { limit: null }, /^limit must be/],
    ['cursor -1', { cursor: '-1' }, /^cursor must be a string of digits/],
    ['cursor 5, a number', { cursor: 5 }, /^cursor must be a string of digits/],
    ['cursor null', { cursor: null }, /^cursor must be/],
    ['cursor past 2^64-1', { cursor: '18446744073709551616' }, /^cursor must be/],
    ['options null', null, /^page options must be an object/],
    ['a state the machine does not have', { state: 'stuck' }, /^state must be one of idle, .*awaitingRelink, got "stuck"/],
  ])('refuses a page option that Redis could not walk (%s) with InvalidInputError', async (_, options, message) => {
    const asking = mailroom.accountsPage(options as never);
    await expect(asking).rejects.toBeInstanceOf(InvalidInputError);
    await expect(asking).rejects.toThrow(message);
    if (!(options && 'state' in options)) await expect(mailroom.entriesPage('dbid:library', options as never)).rejects.toThrow(message);
  });

  it('refuses bad input before touching Redis', async () => {
    await expect(mailroom.link('bad id!', { accessToken: 'x' })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(mailroom.entriesPage('bad id!')).rejects.toBeInstanceOf(InvalidInputError);
    // `.` and `..` would put the account's mirror beside (or above) every other account's.
    for (const dots of ['.', '..', '...']) await expect(mailroom.link(dots, { accessToken: 'x' })).rejects.toThrow(/not only dots/);
    await expect(mailroom.link('dbid:x', {})).rejects.toThrow(/accessToken or refreshToken/);
    // This engine has no app key: a refresh token could never be exchanged.
    await expect(mailroom.link('dbid:x', { refreshToken: 'r' })).rejects.toThrow(/needs the Dropbox app key/);
    expect(await mailroom.status('dbid:x')).toBeNull();
    await expect(mailroom.link('dbid:x', { accessToken: 'x' }, { ignore: [''] })).rejects.toBeInstanceOf(InvalidInputError);
    // A re-link replaces the ignore rules: a misspelt key would link with none, so it is named.
    await expect(mailroom.link('dbid:x', { accessToken: 'x' }, { ignores: ['drafts/**'] } as never)).rejects.toThrow(/unknown link option "ignores"/);
    await expect(mailroom.link('dbid:x', { access_token: 'x' } as never)).rejects.toThrow(/Unrecognized key: "access_token"/);
    // Every field of DropboxCredentials is known, the access token's expiry too.
    await expect(mailroom.link('dbid:x', { accessToken: 'x', accessTokenExpiresAt: 'soon' } as never)).rejects.toThrow(/accessTokenExpiresAt/);
    expect(await mailroom.status('dbid:x')).toBeNull();
    await expect(createEngine({ dataDir })).rejects.toThrow(/redis/);
  });

  it('refuses a numeric option that no timer or limit can take, naming it, before connecting', async () => {
    // NaN made every timer fire at once; past 2^31-1 ms Node fires a timer after 1 ms.
    const refused: [string, Record<string, unknown>][] = [
      ['idleTimeoutMs', { idleTimeoutMs: Number.NaN }],
      ['leaseTtlMs', { leaseTtlMs: 3_000_000_000 }],
      ['leaseTtlMs', { leaseTtlMs: 100 }],
      ['downloadsPerAccount', { downloadsPerAccount: 0 }],
      ['downloadConcurrency', { downloadConcurrency: 2.5 }],
      ['pollIntervalMs', { pollIntervalMs: -1 }],
      ['parkedRecheckMs', { parkedRecheckMs: 0.5 }],
      ['sweepIntervalMs', { sweepIntervalMs: Number.POSITIVE_INFINITY }],
      ['dropbox.callTimeoutMs', { dropbox: { callTimeoutMs: 0 } }],
    ];
    for (const [name, options] of refused) {
      const creating = createEngine({ redisUrl: 'redis://127.0.0.1:1', dataDir, ...options });
      await expect(creating, name).rejects.toBeInstanceOf(InvalidInputError);
      await expect(creating, name).rejects.toThrow(new RegExp(`^${name.replace('.', '\\.')} must be a whole number from`));
    }
  });

  it('accepts a host-owned ioredis client and leaves it open on close', async () => {
    // Its own redis-server: two engines on one Redis would share (and compete for) the accounts.
    const ownServer = await TestRedis.start();
    const redis = await openRedis(ownServer.url);
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-lib-own-'));
    try {
      // Given as a relative path: the folders the engine reports are absolute all the same.
      const second = await createEngine({ redis, dataDir: relative(process.cwd(), dir), dropbox: { apiUrl: emulator.url }, sweepIntervalMs: 0 });
      const account = 'dbid:library-3';
      expect(second.folder(account)).toBe(join(dir, 'mirrors', account));
      emulator.model.addAccount(account, { accessToken: 'tok-lib-3' });
      emulator.model.writeFile(account, '/Hello.md', '# Default builder');
      await second.link(account, { accessToken: 'tok-lib-3' });
      await waitUntil(async () => (await second.entries(account)).length === 1, 20_000, 'the default builder entry');
      expect((await second.entries(account))[0]).toMatchObject({ path: '/Hello.md', title: 'Default builder', html: '<h1>Default builder</h1>\n' });
      expect((await second.status(account))?.folder).toBe(join(dir, 'mirrors', account));
      await second.unlink(account);
      await second.close();
      expect(await redis.ping()).toBe('PONG');
    } finally {
      redis.disconnect();
      await ownServer.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
