import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { ApiClient } from '../../src/cli/api-client.js';
import { CommandLog } from '../support/redis-monitor.js';
import { scriptNameOfSha } from '../../src/redis/scripts.js';
import { accountKeys, LINKED_ACCOUNTS_KEY } from '../../src/redis/keys.js';
import { useScanEncoding } from '../support/scan-encoding.js';
import { ADMIN_TOKEN, APP_SECRET, expectedMirror, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/** The admin API over HTTP: auth, validation, link / status / entries / unlink / resync, ignore rules. */
let h: Harness;

beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

type Json = Record<string, unknown>;
const json = async (response: Response) => (await response.json()) as Json;

/** An account in the emulator with some files, linked through the API and synced. */
async function linkIdle(accountId: string, files: Record<string, string>, body?: Json): Promise<Response> {
  h.emulator.model.addAccount(accountId, { accessToken: `token-${accountId}` });
  for (const [path, content] of Object.entries(files)) h.emulator.model.writeFile(accountId, path, content);
  const response = await h.linkAccount(accountId, body);
  expect(response.status).toBe(200);
  await h.waitForIdle(accountId);
  return response;
}

describe('admin authentication', () => {
  const target = 'dbid:auth-target';

  it.each([
    ['no Authorization header', undefined],
    ['a wrong token', `Bearer ${ADMIN_TOKEN}x`],
    ['a prefix of the token', `Bearer ${ADMIN_TOKEN.slice(0, -1)}`],
    ['an empty bearer token', 'Bearer '],
    ['the token under another scheme', `Basic ${ADMIN_TOKEN}`],
    ['the bare token', ADMIN_TOKEN],
    ['the token followed by another word', `Bearer ${ADMIN_TOKEN} extra`],
  ])('answers 401 with WWW-Authenticate for %s, on every account route', async (_name, authorization) => {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (authorization !== undefined) headers.Authorization = authorization;
    const calls: [string, string, string?][] = [
      ['GET', `/accounts/${target}`],
      ['GET', `/accounts/${target}/entries`],
      ['PUT', `/accounts/${target}`, JSON.stringify({ accessToken: 'sneaky' })],
      ['DELETE', `/accounts/${target}`],
      ['POST', `/accounts/${target}/resync`],
    ];
    for (const [method, path, body] of calls) {
      const response = await fetch(h.url + path, { method, headers, body });
      expect(response.status, `${method} ${path}`).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    // The refused PUT linked nothing.
    expect(await h.engine.accounts.get(target)).toBeNull();
  });

  it('accepts the auth scheme in any case (RFC 7235: "bearer" is "Bearer")', async () => {
    const response = await fetch(`${h.url}/accounts/dbid:nobody`, { headers: { Authorization: `bearer ${ADMIN_TOKEN}` } });
    expect(response.status).toBe(404);
  });
});

describe('PUT /accounts/:id validation', () => {
  const put = (id: string, body: string) => h.api(`/accounts/${id}`, { method: 'PUT', body });

  it('refuses a refresh token alone with 400 when the server has no app key to exchange it', async () => {
    const keyless = await h.startPeer({ ownerId: 'keyless', dropbox: { hosts: { api: h.emulator.url, content: h.emulator.url }, callTimeoutMs: 2_000 } });
    try {
      const response = await keyless.api('/accounts/dbid:v-refresh-only', { method: 'PUT', body: JSON.stringify({ refreshToken: 'a-refresh-token' }) });
      expect(response.status).toBe(400);
      expect(await json(response)).toMatchObject({ error: 'invalid_body', message: expect.stringContaining('DROPBOX_APP_KEY') });
      expect((await h.api('/accounts/dbid:v-refresh-only')).status).toBe(404); // nothing linked
    } finally {
      await keyless.close();
    }
  });

  it('refuses a body that is not JSON with 400 and says what to send', async () => {
    const response = await put('dbid:v1', '{accessToken: nope');
    expect(response.status).toBe(400);
    expect(await json(response)).toMatchObject({ error: 'invalid_json', message: expect.stringMatching(/accessToken/) });
  });

  it.each([
    ['a string', '"a token"'],
    ['a list', '[{"accessToken":"t"}]'],
    ['null', 'null'],
  ])('refuses a JSON body that is %s with one message saying it must be an object', async (_name, body) => {
    const response = await put('dbid:v3', body);
    expect(response.status).toBe(400);
    const answer = await json(response);
    expect(answer).toMatchObject({ error: 'invalid_body', message: expect.stringMatching(/^the body must be a JSON object/) });
    expect(await h.engine.accounts.get('dbid:v3')).toBeNull();
  });

  it('refuses a body over 1 MiB with 413, in JSON', async () => {
    const response = await put('dbid:v4', JSON.stringify({ accessToken: 't'.repeat(1_100_000) }));
    expect(response.status).toBe(413);
    expect(await json(response)).toMatchObject({ error: 'too_large' });
    expect(await h.engine.accounts.get('dbid:v4')).toBeNull();
  });

  it.each([
    ['neither token', {}],
    ['only an ignore list', { ignore: ['drafts/**'] }],
    ['an empty access token', { accessToken: '' }],
    ['a token that is not a string', { accessToken: 42 }],
  ])('refuses %s with 400 naming accessToken / refreshToken', async (_name, body) => {
    const response = await put('dbid:v2', JSON.stringify(body));
    expect(response.status).toBe(400);
    const answer = await json(response);
    expect(answer.error).toBe('invalid_body');
    expect(String(answer.message)).toMatch(/accessToken|refreshToken/);
    expect(await h.engine.accounts.get('dbid:v2')).toBeNull();
  });

  it('refuses a key it does not know with 400 naming it, and keeps the ignore rules a misspelt key would have wiped', async () => {
    expect((await put('dbid:v5', JSON.stringify({ accessToken: 'tok', ignore: ['drafts/**'] }))).status).toBe(200);
    for (const body of [{ accessToken: 'new', ignores: ['drafts/**'] }, { accessToken: 'new', Ignore: ['drafts/**'] }, { access_token: 'new' }]) {
      const response = await put('dbid:v5', JSON.stringify(body));
      expect(response.status, JSON.stringify(body)).toBe(400);
      const key = Object.keys(body).find((name) => name !== 'accessToken')!;
      expect(await json(response)).toMatchObject({ error: 'invalid_body', message: expect.stringContaining(`Unrecognized key: "${key}"`) });
    }
    expect((await h.engine.accounts.get('dbid:v5'))?.ignore).toEqual(['drafts/**']);
    // The emulator has no such account: left linked, it would wait for a re-link in later listings.
    expect((await h.api('/accounts/dbid:v5', { method: 'DELETE' })).status).toBe(204);
  });

  it.each([
    ['a whitespace-only pattern', ['   '], 'invalid_ignore'],
    ['a bare slash', ['/'], 'invalid_ignore'],
    ['an empty pattern', [''], 'invalid_body'],
    ['a string instead of a list', 'drafts/**', 'invalid_body'],
    ['a list holding a number', [7], 'invalid_body'],
  ])('refuses an ignore list with %s with 400', async (_name, ignore, error) => {
    const response = await put('dbid:v3', JSON.stringify({ accessToken: 'tok', ignore }));
    expect(response.status).toBe(400);
    const answer = await json(response);
    expect(answer.error).toBe(error);
    expect(String(answer.message)).toMatch(/ignore|pattern/);
    expect(await h.engine.accounts.get('dbid:v3')).toBeNull();
  });

  it.each([
    ['a brace (Redis hash-tag injection)', 'dbid:a{b}'],
    ['a space', 'dbid:a b'],
    ['an encoded slash', 'dbid:a%2Fb'],
    ['more than 128 characters', `dbid:${'a'.repeat(130)}`],
  ])('refuses an account id with %s with 400, on every route', async (_name, id) => {
    const path = `/accounts/${id.includes('%') ? id : encodeURIComponent(id)}`;
    const calls: [string, string, string?][] = [
      ['PUT', path, JSON.stringify({ accessToken: 'tok' })],
      ['GET', path],
      ['DELETE', path],
      ['GET', `${path}/entries`],
      ['POST', `${path}/resync`],
    ];
    for (const [method, target, body] of calls) {
      const response = await h.api(target, { method, body });
      expect(response.status, `${method} ${target}`).toBe(400);
      expect(await json(response)).toMatchObject({ error: 'invalid_account_id' });
    }
  });
});

describe('routes that do not exist', () => {
  it.each([
    ['GET', '/accounts/dbid:x/nothing-here'],
    ['PATCH', '/accounts/dbid:x'],
    ['GET', '/no-such-page'],
  ])('%s %s is a JSON 404 naming the route', async (method, path) => {
    const response = await h.api(path, { method });
    expect(response.status).toBe(404);
    expect(await json(response)).toEqual({ error: 'not_found', message: `no route ${method} ${path} (docs/contract.md lists the API)` });
  });
});

describe('accounts that are not linked', () => {
  it.each([
    ['GET', '/accounts/dbid:unknown'],
    ['GET', '/accounts/dbid:unknown/entries'],
    ['DELETE', '/accounts/dbid:unknown'],
    ['POST', '/accounts/dbid:unknown/resync'],
  ])('%s %s answers 404 not_linked', async (method, path) => {
    const response = await h.api(path, { method });
    expect(response.status).toBe(404);
    expect(await json(response)).toMatchObject({ error: 'not_linked' });
  });
});

describe('link, status, entries, unlink', () => {
  const id = 'dbid:lifecycle';

  it('links, syncs and reports every status field', async () => {
    const linked = await linkIdle(id, { '/posts/hello.md': '# Hello\n\nworld', '/img/a.bin': 'bytes' });
    const first = await json(linked);
    expect(first).toMatchObject({ accountId: id, folder: mirrorFolder(h.dataDir, id) });
    expect(Object.keys(first).sort()).toEqual(['accountId', 'dirty', 'folder', 'lastError', 'lastSyncedAt', 'pending', 'setAside', 'setAsideFiles', 'state']);

    const status = await json(await h.api(`/accounts/${id}`));
    expect(status).toEqual({
      accountId: id,
      state: 'idle',
      dirty: false,
      pending: 0,
      setAside: 0,
      setAsideFiles: [],
      folder: mirrorFolder(h.dataDir, id),
      lastSyncedAt: expect.any(String),
      lastError: null,
    });
    expect(Date.parse(status.lastSyncedAt as string)).not.toBeNaN();

    const entries = await json(await h.api(`/accounts/${id}/entries`));
    expect((entries.entries as { path: string; title: string }[]).map((e) => [e.path, e.title])).toEqual([['/posts/hello.md', 'Hello']]);
  });

  it('lists every linked account with its status, behind the token', async () => {
    expect((await fetch(`${h.url}/accounts`)).status).toBe(401);
    const listed = (await json(await h.api('/accounts'))) as { accounts: { accountId: string; state: string }[] };
    expect(listed.accounts.map((a) => a.accountId)).toContain(id);
    expect(listed.accounts.find((a) => a.accountId === id)?.state).toBe('idle');
  });

  it('lists only the accounts in a state when asked (?state=), and refuses a state the machine does not have', async () => {
    const idle = (await json(await h.api('/accounts?state=idle'))) as { accounts: { accountId: string; state: string }[] };
    expect(idle.accounts.map((a) => a.accountId)).toContain(id);
    expect(idle.accounts.every((a) => a.state === 'idle')).toBe(true);
    const awaiting = (await json(await h.api('/accounts?state=awaitingRelink'))) as { accounts: unknown[] };
    expect(awaiting.accounts).toEqual([]);
    const wrong = await h.api('/accounts?state=stuck');
    expect(wrong.status).toBe(400);
    expect(await json(wrong)).toMatchObject({ error: 'invalid_state', message: expect.stringContaining('awaitingRelink') });
  });

  it('pages the listing: following `next` reaches every linked account, each page sorted', async () => {
    for (const n of [1, 2, 3, 4, 5]) await linkIdle(`dbid:paged-${n}`, {});
    await useScanEncoding(h.redis, LINKED_ACCOUNTS_KEY, 'set');
    const linked = await h.engine.accounts.linkedIds();
    const seen: string[] = [];
    let cursor: string | null = '0';
    let pages = 0;
    while (cursor !== null) {
      const response = await h.api(`/accounts?limit=2&cursor=${cursor}`);
      expect(response.status).toBe(200);
      const page = (await json(response)) as { accounts: { accountId: string }[]; next: string | null };
      const ids = page.accounts.map((a) => a.accountId);
      expect(ids).toEqual([...ids].sort());
      seen.push(...ids);
      cursor = page.next;
      pages++;
    }
    expect(pages).toBeGreaterThan(1);
    expect([...new Set(seen)].sort()).toEqual(linked);
    // The CLI's client follows the pages the same way.
    const client = new ApiClient(h.url, ADMIN_TOKEN, { pageLimit: 2 });
    expect((await client.listAccounts()).accounts.map((a) => a.accountId).sort()).toEqual(linked);
    expect((await client.listAccounts('idle')).accounts.map((a) => a.accountId)).toEqual(expect.arrayContaining(['dbid:paged-1', 'dbid:paged-5']));
  });

  it('answers the whole listing in one page by default, with `next: null`', async () => {
    const listed = (await json(await h.api('/accounts'))) as { accounts: { accountId: string }[]; next: string | null };
    expect(listed.next).toBeNull();
    expect(listed.accounts.map((a) => a.accountId)).toEqual(await h.engine.accounts.linkedIds());
  });

  it.each([
    ['limit=0', 'invalid_limit'],
    ['limit=1001', 'invalid_limit'],
    ['limit=ten', 'invalid_limit'],
    ['limit=', 'invalid_limit'],
    ['cursor=-1', 'invalid_cursor'],
    ['cursor=abc', 'invalid_cursor'],
    ['cursor=18446744073709551616', 'invalid_cursor'],
  ])('refuses ?%s with a 400 naming the parameter', async (query, error) => {
    const response = await h.api(`/accounts?${query}`);
    expect(response.status).toBe(400);
    expect(await json(response)).toMatchObject({ error, message: expect.any(String) });
  });

  it('finds the accounts in a state with one read per account, reading whole statuses only of those', async () => {
    const parked = 'dbid:filter-parked';
    h.emulator.model.addAccount(parked, { accessToken: 'the-real-token' });
    expect((await h.api(`/accounts/${parked}`, { method: 'PUT', body: JSON.stringify({ accessToken: 'a-revoked-token' }) })).status).toBe(200);
    await waitUntil(async () => (await h.engine.status(parked))?.state === 'awaitingRelink', 10_000, 'the account to wait for a re-link');
    const linked = (await h.engine.accounts.linkedIds()).length;
    expect(linked).toBeGreaterThan(5);
    const log = await CommandLog.start(h.redis);
    try {
      let listed: { accounts: { accountId: string; state: string }[]; next: string | null } | undefined;
      const sent = await log.during(h.redis, async () => {
        listed = (await json(await h.api('/accounts?state=awaitingRelink&limit=1000'))) as typeof listed;
      });
      expect(listed).toEqual({ accounts: [expect.objectContaining({ accountId: parked, state: 'awaitingRelink' })], next: null });
      // One SSCAN, one read of each account's state, one whole status (one script): not a whole
      // status for every linked account.
      expect(sent.length).toBeLessThanOrEqual(1 + linked + 10);
    } finally {
      log.stop();
    }
  });

  it('reads each account of a page of statuses in one round trip', async () => {
    const linked = (await h.engine.accounts.linkedIds()).length;
    expect(linked).toBeGreaterThan(5);
    const log = await CommandLog.start(h.redis);
    try {
      let listed: { accounts: { accountId: string }[] } | undefined;
      const sent = await log.during(h.redis, async () => {
        listed = (await json(await h.api('/accounts?limit=1000'))) as typeof listed;
      });
      expect(listed!.accounts).toHaveLength(linked);
      const statusReads = sent.filter((args) => args[0]?.toLowerCase() === 'evalsha' && scriptNameOfSha(args[1] ?? '') === 'accountStatus');
      expect(statusReads).toHaveLength(linked);
      // The SSCAN and those scripts; the engine's own background work (a lease renewal, the sweep)
      // may land a few commands in the window. Read command by command, a status was ten.
      expect(sent.length).toBeLessThanOrEqual(1 + linked + 5);
    } finally {
      log.stop();
    }
  });

  it('pages the entries: following `next` reaches every entry once, each page sorted by path', async () => {
    const account = 'dbid:paged-entries';
    const posts = Object.fromEntries(['/b.md', '/A.md', '/posts/c.md', '/posts/D.md', '/e.md', '/f.md', '/g.md'].map((p) => [p, `# Title of ${p}`]));
    await linkIdle(account, posts);
    await useScanEncoding(h.redis, accountKeys(account).entryIds, 'hash');
    const all = await h.engine.entries.list(account);
    expect(all).toHaveLength(7);
    const seen: string[] = [];
    let cursor: string | null = '0';
    let pages = 0;
    while (cursor !== null) {
      const response = await h.api(`/accounts/${account}/entries?limit=2&cursor=${cursor}`);
      expect(response.status).toBe(200);
      const page = (await json(response)) as { entries: { id: string; path: string }[]; next: string | null };
      const lower = page.entries.map((e) => e.path.toLowerCase());
      expect(lower).toEqual([...lower].sort());
      seen.push(...page.entries.map((e) => e.id));
      cursor = page.next;
      pages++;
    }
    expect(pages).toBeGreaterThan(1);
    expect([...new Set(seen)].sort()).toEqual(all.map((e) => e.id).sort());
    // The CLI's client follows them, and gives them back in the server's order.
    const client = new ApiClient(h.url, ADMIN_TOKEN, { pageLimit: 2 });
    expect((await client.entries(account)).entries.map((e) => e.path)).toEqual(all.map((e) => e.path));
    expect((await h.api(`/accounts/${account}/entries?limit=0`)).status).toBe(400);
    expect(await json(await h.api(`/accounts/${account}/entries`))).toEqual({ entries: all, next: null });
  });

  it('links with a refresh token', async () => {
    const refreshed = 'dbid:refresh-only';
    h.emulator.model.addAccount(refreshed, { accessToken: 'short-lived', refreshToken: 'refresh-secret' });
    h.emulator.model.writeFile(refreshed, '/r.md', '# R');
    const response = await h.api(`/accounts/${refreshed}`, { method: 'PUT', body: JSON.stringify({ refreshToken: 'refresh-secret' }) });
    expect(response.status).toBe(200);
    await h.waitForIdle(refreshed);
    expect((await readMirror(h.dataDir, refreshed)).get('/r.md')?.content).toBe('# R');
    expect(h.emulator.stats.tokenRequests).toBeGreaterThan(0); // it really went through oauth2/token
  });

  it('unlinks with 204: status and entries turn 404, files stay on disk, webhooks no longer sync it', async () => {
    const response = await h.api(`/accounts/${id}`, { method: 'DELETE' });
    expect(response.status).toBe(204);
    expect(await response.text()).toBe('');
    expect((await h.api(`/accounts/${id}`)).status).toBe(404);
    expect((await h.api(`/accounts/${id}/entries`)).status).toBe(404);
    expect(h.engine.host.actor(id)).toBeFalsy();

    const mirror = await readMirror(h.dataDir, id);
    expect(mirror.get('/posts/hello.md')?.content).toBe('# Hello\n\nworld');
    expect(mirror.get('/img/a.bin')?.content).toBe('bytes');

    h.emulator.model.writeFile(id, '/posts/late.md', '# Late');
    h.emulator.stats.resetStats();
    const delivery = await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [id], attempts: 1 });
    expect(delivery.status).toBe(200);
    expect(h.emulator.stats.calls(id)).toBe(0);
    expect(existsSync(`${mirrorFolder(h.dataDir, id)}/posts/late.md`)).toBe(false);
    expect((await h.api(`/accounts/${id}`, { method: 'DELETE' })).status).toBe(404); // a second unlink
  });
});

describe('POST /accounts/:id/resync', () => {
  it('answers 202 and runs a full re-list (files/list_folder, not just /continue)', async () => {
    const id = 'dbid:resync';
    await linkIdle(id, { '/one.md': '# one', '/two.md': '# two' });
    h.emulator.stats.resetStats();

    const response = await h.api(`/accounts/${id}/resync`, { method: 'POST' });
    expect(response.status).toBe(202);
    expect(await json(response)).toMatchObject({ accountId: id });
    await waitUntil(() => h.emulator.stats.calls(id, 'files/list_folder') >= 1, 10_000, 'a full files/list_folder call');
    await h.waitForIdle(id);
    expect(h.emulator.stats.calls(id, 'files/list_folder')).toBe(1);
    expect(await readMirror(h.dataDir, id)).toEqual(expectedMirror(h.emulator, id));
  });
});

describe('ignore patterns', () => {
  it('never mirrors files under an ignored folder, at link time or later', async () => {
    const id = 'dbid:ignoring';
    await linkIdle(id, { '/drafts/x.md': '# draft', '/Drafts/Deep/y.md': '# deep draft', '/posts/p.md': '# P' }, { accessToken: `token-${id}`, ignore: ['drafts/**'] });
    let mirror = await readMirror(h.dataDir, id);
    expect([...mirror.keys()].sort()).toEqual(['/posts/p.md']);

    // A later change under drafts/ arrives by webhook and is still kept off disk and out of entries.
    h.emulator.model.writeFile(id, '/drafts/x.md', '# draft v2');
    h.emulator.model.writeFile(id, '/drafts/new.md', '# new draft');
    h.emulator.model.writeFile(id, '/posts/q.md', '# Q');
    const delivery = await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [id], attempts: 1 });
    expect(delivery.status).toBe(200);
    await waitUntil(async () => (await readMirror(h.dataDir, id)).has('/posts/q.md'), 10_000, 'the new post to arrive');
    await h.waitForIdle(id);
    mirror = await readMirror(h.dataDir, id);
    expect([...mirror.keys()].sort()).toEqual(['/posts/p.md', '/posts/q.md']);
    expect(existsSync(`${mirrorFolder(h.dataDir, id)}/drafts`)).toBe(false);
    const entries = await json(await h.api(`/accounts/${id}/entries`));
    expect((entries.entries as { path: string }[]).map((e) => e.path).sort()).toEqual(['/posts/p.md', '/posts/q.md']);
  });
});

describe('GET /accounts while Redis fails', () => {
  it('answers 503 at the first failed read instead of reading every other account first', async () => {
    const ids = Array.from({ length: 200 }, (_, n) => `dbid:list-fails-${String(n).padStart(3, '0')}`);
    for (const accountId of ids) await h.engine.accounts.link(accountId, { accessToken: `token-${accountId}` }, [], Date.now());
    // Every status read fails as a command that timed out would.
    const status = h.engine.status.bind(h.engine);
    let reads = 0;
    h.engine.status = async () => {
      reads++;
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error('Command timed out');
    };
    try {
      const listed = await h.api('/accounts');
      expect(listed.status).toBe(503);
      expect(await json(listed)).toMatchObject({ error: 'unavailable' });
      // The reads already in flight (one batch of 32), not one per linked account.
      expect(reads).toBeLessThanOrEqual(32);
    } finally {
      h.engine.status = status;
      for (const accountId of ids) await h.engine.accounts.unlink(accountId);
    }
  });
});
