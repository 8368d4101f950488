import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenCipher } from '../../src/accounts/token-cipher.js';
import { AccountStore } from '../../src/accounts/account-store.js';
import type { DropboxCredentials } from '../../src/dropbox/dropbox-session.js';
import { openRedis } from '../../src/redis/connection.js';
import { accountKeys, LINKED_ACCOUNTS_KEY, oldLayoutKeys } from '../../src/redis/keys.js';
import { upgradeOldLayout } from '../../src/redis/layout-upgrade.js';
import { runScript } from '../../src/redis/scripts.js';
import { SyncStore } from '../../src/sync/sync-store.js';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { cursorFromStored } from '../../src/sync/stored-cursor.js';
import { startProcessFixture } from '../support/process-fixture.js';
import { startTestRedisClient, type TestRedis } from '../support/redis-server.js';
import { APP_SECRET, expectedMirror, readMirror, startHarness, waitUntil, type EngineServer, type Harness } from '../support/sync-harness.js';

/**
 * Accounts that a version before the three-key layout (mailbox, creds, cursor) left in Redis, in
 * its two hashes (`account`: credentials, ignore, linkedAt; `listing`: cursor, pageCursor, mode,
 * resync, ignoreRules). An engine of this version converts them when it starts and carries on where
 * they were: the cursor and the credentials survive, nothing is listed again from scratch.
 */

/**
 * Rewrites an account from the current layout into the old one, field by field as the old version
 * wrote it: the credentials' JSON, sealed as a `v1:` text envelope when there is a key; `ignore`
 * always present; `mode` always present once listed.
 */
async function rewriteAsOldLayout(redis: Redis, accountId: string, credentials: DropboxCredentials | null, cipher?: TokenCipher): Promise<void> {
  const k = accountKeys(accountId);
  const old = oldLayoutKeys(accountId);
  const [ignore, linkedAt, mode, resync, ignoreRules] = await redis.hmget(k.mailbox, 'ignore', 'linkedAt', 'mode', 'resync', 'ignoreRules');
  // The old layout kept cursors as the text Dropbox gave.
  const textOf = (stored: Buffer | null) => (stored === null ? null : cursorFromStored(stored));
  const [cursor, pageCursor] = [textOf(await redis.getBuffer(k.cursor)), textOf(await redis.getBuffer(k.pageCursor))];
  const write = redis.multi();
  if (credentials) {
    const json = JSON.stringify(credentials);
    write.hset(old.account, 'credentials', cipher ? cipher.encrypt(json, accountId) : json, 'ignore', ignore ?? '[]', 'linkedAt', linkedAt!);
  }
  const listing = Object.entries({ cursor, pageCursor, mode: mode ?? (cursor ? 'continue' : null), resync, ignoreRules }).filter(([, value]) => value !== null);
  if (listing.length) write.hset(old.listing, Object.fromEntries(listing) as Record<string, string>);
  write.hdel(k.mailbox, 'ignore', 'linkedAt', 'mode', 'resync', 'ignoreRules');
  write.del(k.credentials, k.cursor, k.pageCursor);
  await write.exec();
}

/** The committed cursor, whichever form it is stored in. */
async function cursorOf(redis: Redis, accountId: string): Promise<string | null> {
  const stored = await redis.getBuffer(accountKeys(accountId).cursor);
  return stored === null ? null : cursorFromStored(stored);
}

/** The names of an account's keys, without the `mr:{<id>}:` prefix. */
const keyNames = async (redis: Redis, accountId: string) => {
  const tag = `mr:{${accountId}}:`;
  return (await redis.keys(`${tag}*`)).map((key) => key.slice(tag.length)).sort();
};

describe('an engine started on accounts of the old layout', () => {
  const cipher = new TokenCipher(randomBytes(32));
  let h: Harness;
  let upgraded: EngineServer;
  const synced = 'dbid:upgrade-synced';
  const neverListed = 'dbid:upgrade-never-listed';
  const unlinked = 'dbid:upgrade-unlinked';
  const credentialsOf = (accountId: string) => ({ accessToken: `token-${accountId}` });
  const oldCursors = new Map<string, string>();

  beforeAll(async () => {
    // The old version ran: two accounts synced (one since unlinked, its mirror and cursor kept)...
    h = await startHarness({ engine: { tokenCipher: cipher, idleTimeoutMs: 100 } });
    for (const accountId of [synced, unlinked]) {
      h.emulator.model.addAccount(accountId, credentialsOf(accountId));
      h.emulator.model.writeFile(accountId, '/posts/first.md', '# First');
      h.emulator.model.writeFile(accountId, '/photo.jpg', 'bytes');
      expect((await h.linkAccount(accountId, credentialsOf(accountId))).status).toBe(200);
      await h.waitForIdle(accountId);
    }
    await waitUntil(async () => (await h.redis.exists(accountKeys(synced).lease, accountKeys(unlinked).lease)) === 0, 5_000, 'both idle actors to be passivated');
    expect(await h.engine.unlink(unlinked)).toBe(true);
    // ...and one linked while the engine was going down, never listed.
    h.emulator.model.addAccount(neverListed, credentialsOf(neverListed));
    h.emulator.model.writeFile(neverListed, '/posts/waiting.md', '# Waiting');
    await h.redis.sadd(LINKED_ACCOUNTS_KEY, neverListed);
    await h.redis.hset(accountKeys(neverListed).mailbox, 'dirty', '1', 'status', 'running');
    await h.redis.hset(oldLayoutKeys(neverListed).account, 'credentials', JSON.stringify(credentialsOf(neverListed)), 'ignore', '[]', 'linkedAt', String(Date.now()));
    await h.engine.close(); // the old version stops

    for (const accountId of [synced, unlinked]) oldCursors.set(accountId, (await cursorOf(h.redis, accountId))!);
    await rewriteAsOldLayout(h.redis, synced, credentialsOf(synced), cipher);
    await rewriteAsOldLayout(h.redis, unlinked, null);
    expect(await keyNames(h.redis, synced)).toEqual(['account', 'entries', 'entry-ids', 'file-ids', 'files', 'listing', 'mailbox']);
    expect(await keyNames(h.redis, unlinked)).toEqual(['entries', 'entry-ids', 'file-ids', 'files', 'listing', 'mailbox']);
    // Changes made while it was down.
    h.emulator.model.writeFile(synced, '/posts/while-down.md', '# While down');
    h.emulator.model.writeFile(unlinked, '/posts/while-unlinked.md', '# While unlinked');

    upgraded = await h.startPeer({ tokenCipher: cipher, ownerId: 'upgraded', idleTimeoutMs: 100 });
  }, 30_000);
  afterAll(async () => {
    await h.close();
  });

  const waitForIdle = (accountId: string) => waitUntil(async () => {
    const status = await upgraded.engine.status(accountId);
    const box = await upgraded.engine.mailbox.read(accountId);
    return status?.state === 'idle' && box.status === 'idle' && !box.dirty && status.pending === 0;
  }, 20_000, `${accountId} to be idle`);

  it('converts a linked account at start: old hashes gone, the same credentials and cursor in the new keys', async () => {
    const k = accountKeys(synced);
    expect(await keyNames(h.redis, synced)).toEqual(['creds', 'cursor', 'entries', 'entry-ids', 'file-ids', 'files', 'mailbox']);
    const stored = (await h.redis.getBuffer(k.credentials))!;
    expect(stored[0]).toBe(0x01); // the text envelope as bytes, converted without decrypting
    expect(cipher.decrypt(stored, synced)).toBe(JSON.stringify(credentialsOf(synced)));
    expect((await upgraded.engine.accounts.get(synced))!.credentials).toEqual(credentialsOf(synced));
    expect(await cursorOf(h.redis, synced)).toBe(oldCursors.get(synced));
    const mailbox = await h.redis.hgetall(k.mailbox);
    expect(mailbox).toMatchObject({ ignoreRules: '[]', status: 'idle', dirty: '0' });
    expect(mailbox.linkedAt).toMatch(/^\d{13}$/);
    expect(mailbox).not.toHaveProperty('ignore'); // '[]' is no field
    expect(mailbox).not.toHaveProperty('mode'); // 'continue' is no field
    expect(await h.redis.object('ENCODING', k.mailbox)).toBe('listpack');
  });

  it('syncs the converted account from its cursor: the change made while it was down, without a full listing', async () => {
    const fullListings = h.emulator.stats.calls(synced, 'files/list_folder');
    const continues = h.emulator.stats.calls(synced, 'files/list_folder/continue');
    expect(await upgraded.engine.notify([synced])).toEqual({ [synced]: 'wake' });
    await waitForIdle(synced);
    expect(await readMirror(h.dataDir, synced)).toEqual(expectedMirror(h.emulator, synced));
    expect((await readMirror(h.dataDir, synced)).has('/posts/while-down.md')).toBe(true);
    expect(h.emulator.stats.calls(synced, 'files/list_folder')).toBe(fullListings);
    expect(h.emulator.stats.calls(synced, 'files/list_folder/continue')).toBeGreaterThan(continues);
    expect((await upgraded.engine.entries.list(synced)).map((e) => e.path).sort()).toEqual(['/posts/first.md', '/posts/while-down.md']);
  });

  it('resumes, at boot and without a webhook, a converted account the old version had not listed yet (plaintext credentials stay plaintext)', async () => {
    await waitForIdle(neverListed);
    expect(await readMirror(h.dataDir, neverListed)).toEqual(expectedMirror(h.emulator, neverListed));
    expect(await h.redis.get(accountKeys(neverListed).credentials)).toBe(JSON.stringify(credentialsOf(neverListed)));
    expect(await h.redis.exists(oldLayoutKeys(neverListed).account)).toBe(0);
  });

  it('leaves an account unlinked before the upgrade alone until a re-link, which carries on from its cursor', async () => {
    expect(await keyNames(h.redis, unlinked)).toEqual(['entries', 'entry-ids', 'file-ids', 'files', 'listing', 'mailbox']);
    const fullListings = h.emulator.stats.calls(unlinked, 'files/list_folder');
    await upgraded.engine.link(unlinked, credentialsOf(unlinked));
    await waitForIdle(unlinked);
    await waitUntil(async () => (await h.redis.exists(accountKeys(unlinked).lease)) === 0, 5_000, 'the idle actor to be passivated');
    expect(await keyNames(h.redis, unlinked)).toEqual(['creds', 'cursor', 'entries', 'entry-ids', 'file-ids', 'files', 'mailbox']);
    expect(await readMirror(h.dataDir, unlinked)).toEqual(expectedMirror(h.emulator, unlinked));
    expect(h.emulator.stats.calls(unlinked, 'files/list_folder')).toBe(fullListings);
    expect(await cursorOf(h.redis, unlinked)).not.toBe(oldCursors.get(unlinked)); // moved on past the change
  });

  it('finds nothing left to convert on the next start', async () => {
    const again = await h.startPeer({ tokenCipher: cipher, ownerId: 'restarted' });
    expect(await again.engine.upgradeStoredLayout()).toBe(0);
  });
});

describe('converting one account (layout-upgrade.lua)', () => {
  let server: TestRedis;
  let redis: Redis;
  let stopRedis: () => Promise<void>;
  beforeAll(async () => {
    ({ server, redis, stop: stopRedis } = await startTestRedisClient());
  });
  afterAll(() => stopRedis());

  const writeOld = async (accountId: string, credentials: string, listing: Record<string, string> = {}) => {
    const old = oldLayoutKeys(accountId);
    await redis.hset(old.account, 'credentials', credentials, 'ignore', '["/drafts/**"]', 'linkedAt', '1700000000000');
    if (Object.keys(listing).length) await redis.hset(old.listing, listing);
    await redis.hset(accountKeys(accountId).mailbox, 'fence', '3', 'status', 'running', 'dirty', '1');
  };

  it('moves every field where the new layout keeps it, a listing in progress and a resync request too', async () => {
    const accountId = 'dbid:fields';
    const cipher = new TokenCipher(randomBytes(32));
    const text = cipher.encrypt('{"refreshToken":"r"}', accountId);
    await writeOld(accountId, text, { cursor: 'c1', pageCursor: 'c2', mode: 'full', resync: '1', ignoreRules: '["/old/**"]' });
    expect(await upgradeOldLayout(redis, [accountId])).toBe(1);
    const k = accountKeys(accountId);
    expect((await redis.getBuffer(k.credentials))!.equals(TokenCipher.textEnvelopeToBytes(text)!)).toBe(true);
    expect(await redis.get(k.cursor)).toBe('c1');
    expect(await redis.get(k.pageCursor)).toBe('c2');
    // The fence moved on: an old process still running the actor (token 3) is refused from now on.
    expect(Number(await redis.hget(k.mailbox, 'fence'))).toBeGreaterThan(3);
    expect(await redis.hgetall(k.mailbox)).toEqual({
      fence: expect.stringMatching(/^[0-9]+$/),
      status: 'running', dirty: '1',
      ignore: '["/drafts/**"]', linkedAt: '1700000000000', mode: 'full', resync: '1', ignoreRules: '["/old/**"]',
    });
    expect(await redis.exists(oldLayoutKeys(accountId).account, oldLayoutKeys(accountId).listing)).toBe(0);
    // The resync the old version recorded still happens.
    expect(await new SyncStore(redis).beginListing(accountId)).toMatchObject({ mode: 'full', from: '' });
  });

  it('keeps a damaged envelope as it is, for the reader to report', async () => {
    const accountId = 'dbid:damaged';
    await writeOld(accountId, 'v1:not-an-envelope');
    expect(await upgradeOldLayout(redis, [accountId])).toBe(1);
    expect(await redis.get(accountKeys(accountId).credentials)).toBe('v1:not-an-envelope');
  });

  it('converts the others when the set of linked accounts holds something that is no account id', async () => {
    const accountId = 'dbid:next-to-a-bad-id';
    await writeOld(accountId, JSON.stringify({ accessToken: 't' }), { cursor: 'c1', mode: 'continue', ignoreRules: '[]' });
    await redis.sadd(LINKED_ACCOUNTS_KEY, 'not an id {}', accountId); // the bad one by hand, or by a tool gone wrong
    // What the engine does at start: the linked ids, then the upgrade.
    expect(await upgradeOldLayout(redis, await new AccountStore(redis).linkedIds())).toBe(1);
    expect(await redis.exists(accountKeys(accountId).credentials)).toBe(1);
  });

  it('converts each account once when two processes start at the same time, and nothing on a second run', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `dbid:race-${i}`);
    for (const accountId of ids) await writeOld(accountId, JSON.stringify({ accessToken: accountId }), { cursor: `cursor-${accountId}`, mode: 'continue', ignoreRules: '[]' });
    const other = await openRedis(server.url);
    try {
      const [a, b] = await Promise.all([upgradeOldLayout(redis, ids), upgradeOldLayout(other, ids)]);
      expect(a + b).toBe(ids.length);
    } finally {
      other.disconnect();
    }
    for (const accountId of ids) {
      expect(await redis.get(accountKeys(accountId).cursor)).toBe(`cursor-${accountId}`);
      expect(Number(await redis.hget(accountKeys(accountId).mailbox, 'fence'))).toBeGreaterThan(3); // the old token refused
    }
    expect(await upgradeOldLayout(redis, ids)).toBe(0);
  });

  it('refuses to overwrite credentials that changed since they were read', async () => {
    const accountId = 'dbid:changed';
    await writeOld(accountId, '{"accessToken":"newer"}', { cursor: 'c1' });
    const old = oldLayoutKeys(accountId);
    const k = accountKeys(accountId);
    const stale = await runScript<number>(redis, 'layoutUpgrade', [old.account, old.listing, k.mailbox, k.credentials, k.cursor, k.pageCursor], ['{"accessToken":"older"}', '{"accessToken":"older"}']);
    expect(stale).toBe(-1);
    expect(await redis.exists(old.account, old.listing)).toBe(2);
    expect(await redis.exists(k.credentials, k.cursor)).toBe(0);
    expect(await upgradeOldLayout(redis, [accountId])).toBe(1);
    expect(await redis.get(k.credentials)).toBe('{"accessToken":"newer"}');
  });
});

describe('the server process (src/main.ts) on the old layout', () => {
  it('converts before it listens: the first webhook finds the account linked and syncs it', async () => {
    const fixture = await startProcessFixture('upgrade');
    try {
      const account = 'dbid:upgrade-process';
      fixture.emulator.model.addAccount(account, { accessToken: 'tok-process' });
      fixture.emulator.model.writeFile(account, '/posts/a.md', '# A');
      // Linked and idle in the old layout: nothing to resume at boot, only a webhook wakes it.
      await fixture.redis.sadd(LINKED_ACCOUNTS_KEY, account);
      await fixture.redis.hset(oldLayoutKeys(account).account, 'credentials', '{"accessToken":"tok-process"}', 'ignore', '[]', 'linkedAt', '1700000000000');
      await fixture.redis.hset(accountKeys(account).mailbox, 'status', 'idle', 'dirty', '0', 'fence', '1');
      const engine = await fixture.startEngine();
      const converted = engine.output.indexOf('converted accounts from the old Redis layout');
      expect(converted).toBeGreaterThan(-1);
      expect(converted).toBeLessThan(engine.output.indexOf('"msg":"listening"'));
      const delivery = await sendWebhook({ url: `${engine.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 });
      expect(delivery.status).toBe(200);
      await waitUntil(async () => (await readMirror(fixture.dataDir, account)).has('/posts/a.md'), 10_000, 'the webhook\'s sync');
      expect(await fixture.redis.exists(oldLayoutKeys(account).account)).toBe(0);
    } finally {
      await fixture.close();
    }
  }, 30_000);
});
