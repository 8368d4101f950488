import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStore } from '../../src/accounts/account-store.js';
import { TokenCipher, TokenDecryptError } from '../../src/accounts/token-cipher.js';
import { codeChallengeOf } from '../../src/oauth/pkce.js';
import { OAuthStartTickets } from '../../src/oauth/start-tickets.js';
import { openRedis } from '../../src/redis/connection.js';
import { accountKeys } from '../../src/redis/keys.js';
import { ADMIN_TOKEN, APP_KEY, expectConverged, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';
import { callback, issueStartLink, openStartLink, openStartPage, pressContinue, startTrip, type BrowserTrip, type StartLink } from './oauth-client.js';

/**
 * The OAuth code flow end to end over real HTTP: a one-time start link from the engine's
 * POST /oauth/start, opened as a browser would (GET /oauth/start?ticket=, then its button: POST
 * /oauth/continue), the emulator's
 * authorize page (auto-approving the account the test chose), the engine's /oauth/callback carrying
 * the browser's cookie, then the account's first sync. Tokens are encrypted in Redis and appear in
 * no log line, status, event or actor snapshot.
 */
let h: Harness;
const cipher = new TokenCipher(randomBytes(32));
const logLines: string[] = [];
const events: string[] = [];
const at = new Date('2024-07-07T07:07:07Z');
/** Every secret the flow handled, to look for afterwards. */
const secrets = new Set<string>();

beforeAll(async () => {
  h = await startHarness({ engine: { tokenCipher: cipher }, logLines });
  const emit = h.engine.events.emit.bind(h.engine.events);
  h.engine.events.emit = ((name: string, ...args: unknown[]) => {
    events.push(JSON.stringify([name, args]));
    return (emit as (n: string, ...a: unknown[]) => boolean)(name, ...args);
  }) as typeof h.engine.events.emit;
});
afterAll(async () => h.close());

function addAccount(accountId: string, files: Record<string, string> = {}): void {
  h.emulator.model.addAccount(accountId, { accessToken: `unused-${randomBytes(8).toString('hex')}` });
  for (const [path, content] of Object.entries(files)) h.emulator.model.writeFile(accountId, path, content, { clientModified: at });
}

/** The last 'OAuth callback refused' log line. */
function lastCallbackRefusal(): { level: number; reason?: string; detail?: string } | undefined {
  return logLines.map((line) => JSON.parse(line) as { level: number; msg: string; reason?: string; detail?: string }).filter((r) => r.msg === 'OAuth callback refused').at(-1);
}

async function linked(accountId: string): Promise<boolean> {
  return (await h.engine.accounts.get(accountId)) !== null;
}

/** The browser back at the callback with its cookie: the account is linked and synced; its tokens join the secrets looked for in the logs. */
async function completeTrip(trip: BrowserTrip, account: string): Promise<void> {
  const done = await callback(trip.callbackUrl, trip.cookie);
  expect(done.status, done.text).toBe(200);
  await h.waitForIdle(account);
  expect(await linked(account)).toBe(true);
  const stored = (await h.engine.accounts.get(account))!.credentials;
  secrets.add(stored.refreshToken!).add(stored.accessToken!);
}

describe('linking through the OAuth code flow', () => {
  it('start -> authorize -> callback links the account, stores its tokens encrypted and mirrors its files', async () => {
    const account = 'dbid:oauth-alice';
    addAccount(account, { '/posts/hello.md': '# Hello', '/notes/todo.txt': 'milk' });
    h.emulator.model.tokens.approveNextAuthorization(account);
    const tokenRequests = h.emulator.stats.tokenRequests;

    const trip = await startTrip(h);
    // The documented authorize URL: code flow, offline access, PKCE S256, state, our callback.
    expect(trip.authorizeUrl.origin + trip.authorizeUrl.pathname).toBe(`${h.emulator.url}/oauth2/authorize`);
    const q = trip.authorizeUrl.searchParams;
    expect(Object.fromEntries(q)).toMatchObject({
      client_id: APP_KEY,
      response_type: 'code',
      redirect_uri: `${h.url}/oauth/callback`,
      code_challenge_method: 'S256',
      token_access_type: 'offline',
    });
    expect(q.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The state is bound to this browser by an HttpOnly, SameSite=Lax cookie scoped to the callback.
    expect(trip.setCookie).toMatch(/HttpOnly/i);
    expect(trip.setCookie).toMatch(/SameSite=Lax/i);
    expect(trip.setCookie).toMatch(/Path=\/oauth\/callback/);
    expect(trip.callbackUrl.searchParams.get('state')).toBe(q.get('state'));
    secrets.add(trip.callbackUrl.searchParams.get('code')!).add(trip.cookie.split('=')[1]!);

    const done = await callback(trip.callbackUrl, trip.cookie);
    expect(done.status, done.text).toBe(200);
    expect(done.text).toContain(account);
    expect(done.text).not.toContain(trip.callbackUrl.searchParams.get('code')!);

    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder') > 0, 10_000, 'the first listing');
    await h.waitForIdle(account);
    await expectConverged(h, account);
    // One /oauth2/token call (the exchange): the exchanged access token came with its expiry, so no refresh.
    expect(h.emulator.stats.tokenRequests).toBe(tokenRequests + 1);

    // At rest: an AES-GCM envelope as bytes, nothing readable.
    const k = accountKeys(account);
    const raw = { credentials: (await h.redis.getBuffer(k.credentials))!.toString('latin1'), ...(await h.redis.hgetall(k.mailbox)) };
    const credentials = (await h.engine.accounts.get(account))!.credentials;
    expect(credentials.refreshToken).toBeTruthy();
    expect(credentials.accessToken).toMatch(/^sl\./);
    secrets.add(credentials.refreshToken!).add(credentials.accessToken!);
    expect(raw.credentials!.charCodeAt(0)).toBe(0x01);
    expect(Buffer.from(raw.credentials!, 'latin1').subarray(1, 7).toString('base64url')).toBe(cipher.keyId);
    for (const value of Object.values(raw)) {
      expect(value).not.toContain('refreshToken');
      expect(value).not.toContain('accessToken');
      expect(value).not.toContain(credentials.refreshToken!);
      expect(value).not.toContain(credentials.accessToken!);
    }
  });

  it('a re-link through OAuth keeps the account\'s ignore patterns', async () => {
    const account = 'dbid:oauth-relink';
    addAccount(account, { '/posts/a.md': '# A', '/drafts/b.md': '# B' });
    h.emulator.model.tokens.registerAccessToken(account, 'relink-first-token');
    expect((await h.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: 'relink-first-token', ignore: ['/drafts/**'] }) })).status).toBe(200);
    await h.waitForIdle(account);

    h.emulator.model.tokens.approveNextAuthorization(account);
    const trip = await startTrip(h);
    expect((await callback(trip.callbackUrl, trip.cookie)).status).toBe(200);
    await h.waitForIdle(account);
    const stored = (await h.engine.accounts.get(account))!;
    expect(stored.ignore).toEqual(['/drafts/**']);
    expect(stored.credentials.refreshToken).toBeTruthy();
    secrets.add(stored.credentials.refreshToken!).add(stored.credentials.accessToken!);
  });

  it('GET /oauth/start without a ticket needs Authorization: Bearer (a script following the redirect); a browser without either is told how to get a link', async () => {
    const anonymous = await fetch(`${h.url}/oauth/start`, { redirect: 'manual' });
    expect(anonymous.status).toBe(401);
    const page = await anonymous.text();
    expect(page).toContain('mailroom link-url');
    expect(page).toContain('POST /oauth/start');
    expect(await h.redis.keys('mr:oauth:state:*')).toHaveLength(0);
    const withHeader = await fetch(`${h.url}/oauth/start`, { redirect: 'manual', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(withHeader.status).toBe(302);
    // The pending state lives in Redis with a short TTL.
    const [key] = await h.redis.keys('mr:oauth:state:*');
    expect(await h.redis.ttl(key!)).toBeGreaterThan(500);
    expect(await h.redis.ttl(key!)).toBeLessThanOrEqual(600);
    await h.redis.del(key!);
  });

  it('?token= is refused, the right admin token too, with a page explaining the new way that does not echo it', async () => {
    const warnings = () => logLines.filter((line) => line.includes('"level":40') && line.includes('"reason":"token_in_url"')).length;
    const before = warnings();
    const attempts: [string, Record<string, string>][] = [
      [ADMIN_TOKEN, {}],
      ['wrong-token-<b>0123456789</b>', {}],
      // A valid header does not make the token in the URL acceptable: the link would stay in use.
      [ADMIN_TOKEN, { Authorization: `Bearer ${ADMIN_TOKEN}` }],
    ];
    for (const [token, headers] of attempts) {
      const res = await fetch(`${h.url}/oauth/start?token=${encodeURIComponent(token)}`, { redirect: 'manual', headers });
      const page = await res.text();
      expect(res.status).toBe(401);
      expect(page).toContain('no longer accepted in the URL');
      expect(page).toContain('mailroom link-url');
      expect(page).toContain('POST /oauth/start');
      expect(page).not.toContain(token);
      expect(page).not.toContain(encodeURIComponent(token));
      expect(page).not.toContain('0123456789');
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    expect(await h.redis.keys('mr:oauth:state:*')).toHaveLength(0);
    // Logged as a warning (the operator may want to change the token), without the token.
    expect(warnings()).toBe(before + attempts.length);
    expect(logLines.join('\n')).not.toContain(ADMIN_TOKEN);
  });
});

/** The Redis key of a start link's ticket: the SHA-256 of the ticket, never the ticket. */
function ticketKey(link: StartLink): string {
  return `mr:oauth:start-ticket:${createHash('sha256').update(link.url.searchParams.get('ticket')!).digest('base64url')}`;
}

/** A start link whose ticket the final test looks for in the logs. */
async function issueWatched(server: Parameters<typeof issueStartLink>[0]): Promise<StartLink> {
  const link = await issueStartLink(server);
  secrets.add(link.url.searchParams.get('ticket')!);
  return link;
}

async function refusedStart(url: URL | string): Promise<{ status: number; text: string; cookies: string[]; authenticate: string | null }> {
  const res = await fetch(url, { redirect: 'manual' });
  return { status: res.status, text: await res.text(), cookies: res.headers.getSetCookie(), authenticate: res.headers.get('www-authenticate') };
}

describe('one-time start links', () => {
  it('POST /oauth/start needs the admin token and answers a link to GET /oauth/start with a ticket', async () => {
    const anonymous = await fetch(`${h.url}/oauth/start`, { method: 'POST' });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: 'unauthorized' });
    const wrong = await fetch(`${h.url}/oauth/start`, { method: 'POST', headers: { Authorization: 'Bearer wrong-token-0123456789' } });
    expect(wrong.status).toBe(401);

    const link = await issueWatched(h);
    expect(link.url.origin + link.url.pathname).toBe(`${h.url}/oauth/start`);
    expect([...link.url.searchParams.keys()]).toEqual(['ticket']);
    expect(link.url.searchParams.get('ticket')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(link.expiresInMs).toBe(600_000);
    await h.redis.del(ticketKey(link));
  });

  it.each([
    ['on the public origin of OAUTH_REDIRECT_URL when it is set: the state cookie must be set on that host', 'oauth-behind-proxy', 'https://mailroom.example.com/oauth/callback', 'https://mailroom.example.com/oauth/start'],
    ['also under its path prefix: a proxy may mount this server where the request here never shows', 'oauth-path-prefix', 'https://blog.example.com/sync/oauth/callback', 'https://blog.example.com/sync/oauth/start'],
    ['under that prefix whatever a trailing slash says', 'oauth-trailing-slash', 'https://blog.example.com/sync/oauth/callback/', 'https://blog.example.com/sync/oauth/start'],
    ['on the path asked when the callback is an alias of the proxy (not this server\'s /oauth/callback)', 'oauth-alias', 'https://x.example.com/dropbox/callback', 'https://x.example.com/oauth/start'],
    ['on that host with a doubled slash, which would otherwise name another host', 'oauth-double-slash', 'https://x.example.com//oauth/callback', 'https://x.example.com/oauth/start'],
  ])('the link is %s', async (_why, ownerId, redirectUrl, expected) => {
    const behindProxy = await h.startPeer({ tokenCipher: cipher, ownerId, dropbox: { ...h.engine.options.dropbox, redirectUrl } });
    try {
      const link = await issueWatched(behindProxy);
      expect(link.url.origin + link.url.pathname).toBe(expected);
      await h.redis.del(ticketKey(link));
    } finally {
      await behindProxy.close();
    }
  });

  it('no link without DROPBOX_APP_KEY: 503 saying what to set', async () => {
    const keyless = await h.startPeer({ ownerId: 'oauth-keyless', dropbox: { ...h.engine.options.dropbox, appKey: undefined } });
    try {
      const res = await keyless.api('/oauth/start', { method: 'POST' });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: 'oauth_not_configured', message: expect.stringContaining('DROPBOX_APP_KEY') });
    } finally {
      await keyless.close();
    }
  });

  it('only the ticket\'s hash is in Redis, with the link\'s lifetime as its TTL', async () => {
    const link = await issueWatched(h);
    const ticket = link.url.searchParams.get('ticket')!;
    const ttl = await h.redis.pttl(ticketKey(link));
    expect(ttl).toBeGreaterThan(link.expiresInMs - 10_000);
    expect(ttl).toBeLessThanOrEqual(link.expiresInMs);
    expect((await h.redis.keys('*')).filter((key) => key.includes(ticket))).toEqual([]);
    expect(await h.redis.get(ticketKey(link))).not.toContain(ticket);
    await h.redis.del(ticketKey(link));
  });

  it('a link opens once: once its button was pressed, opening it again is refused with a page saying how to get a fresh one', async () => {
    const link = await issueWatched(h);
    const first = await pressContinue(await openStartPage(link.url));
    expect(first.status).toBe(303);
    expect(new URL(first.headers.get('location')!).searchParams.get('redirect_uri')).toBe(`${h.url}/oauth/callback`);
    const states = (await h.redis.keys('mr:oauth:state:*')).length;

    const again = await refusedStart(link.url);
    expect(again.status).toBe(401);
    expect(again.authenticate).toBe('Bearer');
    expect(again.text).toContain('unknown, already used or expired');
    expect(again.text).toContain('mailroom link-url');
    expect(again.text).toContain('POST /oauth/start');
    expect(again.cookies).toEqual([]);
    // Nor does its button work a second time (a page left open, a form posted again).
    const pressedAgain = await pressContinue({ continueUrl: new URL('/oauth/continue', h.url), ticket: link.url.searchParams.get('ticket')! });
    expect(pressedAgain.status).toBe(401);
    expect(await pressedAgain.text()).toContain('unknown, already used or expired');
    expect((await h.redis.keys('mr:oauth:state:*')).length).toBe(states); // nothing started
  });

  it('a link fetched before its reader opens it (a chat app\'s preview, a mail filter) still works: only its button spends it', async () => {
    const account = 'dbid:oauth-scanned';
    addAccount(account, { '/posts/scanned.md': '# Scanned' });
    h.emulator.model.tokens.approveNextAuthorization(account);
    const link = await issueWatched(h);
    const states = (await h.redis.keys('mr:oauth:state:*')).length;
    for (const method of ['GET', 'HEAD', 'GET']) expect((await fetch(link.url, { method, redirect: 'manual' })).status).toBe(200);
    // The page starts nothing: no state, no cookie; its form may lead on to Dropbox only.
    const page = await openStartPage(link.url);
    expect(page.headers.getSetCookie()).toEqual([]);
    expect((await h.redis.keys('mr:oauth:state:*')).length).toBe(states);
    expect(page.continueUrl.href).toBe(`${h.url}/oauth/continue`);
    expect(page.headers.get('content-security-policy')).toBe(`default-src 'none'; form-action 'self' ${h.emulator.url}`);
    expect(page.headers.get('cache-control')).toBe('no-store');

    const trip = await openStartLink(link.url);
    await completeTrip(trip, account);
  });

  it('POST /oauth/continue refuses what is no ticket, or too large a body, and spends nothing without DROPBOX_APP_KEY', async () => {
    const continueUrl = new URL('/oauth/continue', h.url);
    for (const body of [new URLSearchParams({ ticket: randomBytes(32).toString('base64url') }), new URLSearchParams({}), new URLSearchParams({ ticket: 'short' })]) {
      const res = await fetch(continueUrl, { method: 'POST', redirect: 'manual', body });
      expect(res.status).toBe(401);
      expect(await res.text()).toContain('unknown, already used or expired');
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    const huge = await fetch(continueUrl, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ ticket: 'x'.repeat(100_000) }) });
    expect(huge.status).toBe(413);

    const keyless = await h.startPeer({ ownerId: 'oauth-keyless-continue', dropbox: { ...h.engine.options.dropbox, appKey: undefined } });
    try {
      const link = await issueWatched(h);
      const refused = await pressContinue({ continueUrl: new URL('/oauth/continue', keyless.url), ticket: link.url.searchParams.get('ticket')! });
      expect(refused.status).toBe(503);
      expect(await refused.text()).toContain('DROPBOX_APP_KEY');
      expect(await h.redis.exists(ticketKey(link))).toBe(1); // still good where OAuth is set up
      await h.redis.del(ticketKey(link));
    } finally {
      await keyless.close();
    }
  });

  it('redeemed at once by several processes, a ticket is good for exactly one of them', async () => {
    // Each connection sends all its commands before any answer comes back: a check-then-delete
    // would see the ticket from every call. Two connections, as two processes would have.
    const other = await openRedis(h.redisServer.url);
    try {
      const stores = [new OAuthStartTickets(h.redis), new OAuthStartTickets(other)];
      const { ticket } = await stores[0]!.issue();
      const answers = await Promise.all(stores.flatMap((store) => Array.from({ length: 5 }, () => store.redeem(ticket))));
      expect(answers.filter(Boolean)).toHaveLength(1);
    } finally {
      other.disconnect();
    }
  });

  it('an expired link is refused', async () => {
    const link = await issueWatched(h);
    // Ten minutes pass, as far as Redis is concerned.
    await h.redis.pexpire(ticketKey(link), 1);
    await waitUntil(async () => (await h.redis.exists(ticketKey(link))) === 0, 2_000, 'the ticket to expire');
    const expired = await refusedStart(link.url);
    expect(expired.status).toBe(401);
    expect(expired.text).toContain('unknown, already used or expired');
    expect(expired.cookies).toEqual([]);
  });

  it('an unknown or malformed ticket is refused', async () => {
    for (const ticket of [randomBytes(32).toString('base64url'), 'short', '', 'x'.repeat(5_000)]) {
      const refused = await refusedStart(`${h.url}/oauth/start?ticket=${encodeURIComponent(ticket)}`);
      expect(refused.status, ticket.slice(0, 20)).toBe(401);
      expect(refused.text).toContain('unknown, already used or expired');
    }
  });

  it('a link issued by one process opens at another behind the same load balancer, which completes the link', async () => {
    const peer = await h.startPeer({ tokenCipher: cipher, ownerId: 'oauth-peer' });
    const account = 'dbid:oauth-peer';
    addAccount(account, { '/posts/peer.md': '# Peer' });
    h.emulator.model.tokens.approveNextAuthorization(account);
    const link = await issueWatched(h);
    const trip = await openStartLink(new URL(link.url.pathname + link.url.search, peer.url));
    expect(trip.authorizeUrl.searchParams.get('redirect_uri')).toBe(`${peer.url}/oauth/callback`);
    await completeTrip(trip, account);
    // Spent for every process, the one that issued it included.
    expect((await refusedStart(link.url)).status).toBe(401);
  });
});

describe('callbacks the engine refuses', () => {
  it('without the cookie, or with another browser\'s cookie: 400, nothing linked, and the state is spent', async () => {
    const account = 'dbid:oauth-csrf';
    addAccount(account);
    h.emulator.model.tokens.approveNextAuthorization(account);
    const trip = await startTrip(h);
    const noCookie = await callback(trip.callbackUrl, undefined);
    expect(noCookie.status).toBe(400);
    expect(noCookie.text).toMatch(/did not start this authorization/);
    expect(noCookie.text).toContain('a new start link (mailroom link-url gives one), opened in this browser');
    // The legitimate browser cannot use it any more either: start again.
    const later = await callback(trip.callbackUrl, trip.cookie);
    expect(later.status).toBe(400);
    expect(later.text).toMatch(/unknown, already used or expired/);

    h.emulator.model.tokens.approveNextAuthorization(account);
    const other = await startTrip(h);
    const wrongCookie = await callback(other.callbackUrl, `${other.cookie.split('=')[0]}=${randomBytes(32).toString('base64url')}`);
    expect(wrongCookie.status).toBe(400);
    expect(wrongCookie.text).toMatch(/did not start this authorization/);
    expect(await linked(account)).toBe(false);
  });

  it('two links started in one browser both complete, each with its own cookie', async () => {
    const first = 'dbid:oauth-two-tabs-1';
    const second = 'dbid:oauth-two-tabs-2';
    addAccount(first);
    addAccount(second);
    h.emulator.model.tokens.approveNextAuthorization(first);
    const tab1 = await startTrip(h);
    h.emulator.model.tokens.approveNextAuthorization(second);
    const tab2 = await startTrip(h);
    expect(tab1.cookie.split('=')[0]).not.toBe(tab2.cookie.split('=')[0]);
    // The browser sends every cookie it holds for the callback's path.
    const jar = `${tab1.cookie}; ${tab2.cookie}`;
    expect((await callback(tab1.callbackUrl, jar)).status).toBe(200);
    expect((await callback(tab2.callbackUrl, jar)).status).toBe(200);
    expect(await linked(first)).toBe(true);
    expect(await linked(second)).toBe(true);
  });

  it('an unknown or missing state: 400', async () => {
    const account = 'dbid:oauth-state';
    addAccount(account);
    h.emulator.model.tokens.approveNextAuthorization(account);
    const trip = await startTrip(h);
    const forged = new URL(trip.callbackUrl);
    forged.searchParams.set('state', randomBytes(32).toString('base64url'));
    expect((await callback(forged, trip.cookie)).status).toBe(400);
    forged.searchParams.delete('state');
    const missing = await callback(forged, trip.cookie);
    expect(missing.status).toBe(400);
    expect(missing.text).toMatch(/no state/);
    // Not back to a bare /oauth/start, which no longer opens without a start link.
    expect(missing.text).toContain('Start again with a new start link (mailroom link-url gives one)');
    expect(await linked(account)).toBe(false);
  });

  it('a code used twice: the second exchange is refused by Dropbox and reported as 400', async () => {
    const account = 'dbid:oauth-reuse';
    addAccount(account);
    h.emulator.model.tokens.approveNextAuthorization(account);
    const first = await startTrip(h);
    expect((await callback(first.callbackUrl, first.cookie)).status).toBe(200);
    await h.waitForIdle(account);
    const credentialsBefore = (await h.engine.accounts.get(account))!.credentials;
    secrets.add(credentialsBefore.refreshToken!).add(credentialsBefore.accessToken!);

    // Replaying the same callback: its state is spent.
    expect((await callback(first.callbackUrl, first.cookie)).status).toBe(400);
    // A fresh flow whose callback carries the old code: state and cookie are fine, the code is not.
    h.emulator.model.tokens.approveNextAuthorization(account);
    const second = await startTrip(h);
    const replay = new URL(second.callbackUrl);
    replay.searchParams.set('code', first.callbackUrl.searchParams.get('code')!);
    const refused = await callback(replay, second.cookie);
    expect(refused.status).toBe(400);
    expect(refused.text).toMatch(/refused the authorization code/);
    expect((await h.engine.accounts.get(account))!.credentials).toEqual(credentialsBefore);
  });

  it('a wrong PKCE verifier: the exchange is refused, 400', async () => {
    const account = 'dbid:oauth-verifier';
    addAccount(account);
    h.emulator.model.tokens.approveNextAuthorization(account);
    const trip = await startTrip(h);
    // Swap the verifier stored for this state (encrypted like the engine does) for another one.
    const state = trip.callbackUrl.searchParams.get('state')!;
    const key = `mr:oauth:state:${state}`;
    const pending = JSON.parse((await h.redis.get(key))!) as { codeVerifier: string };
    const realVerifier = cipher.decrypt(pending.codeVerifier, `oauth-state:${state}`);
    expect(codeChallengeOf(realVerifier)).toBe(trip.authorizeUrl.searchParams.get('code_challenge')); // and never stored in plaintext
    expect(pending.codeVerifier).not.toContain(realVerifier);
    pending.codeVerifier = cipher.encrypt(randomBytes(64).toString('base64url'), `oauth-state:${state}`);
    await h.redis.set(key, JSON.stringify(pending), 'EX', 600);

    const refused = await callback(trip.callbackUrl, trip.cookie);
    expect(refused.status).toBe(400);
    expect(refused.text).toMatch(/invalid code verifier/);
    expect(await linked(account)).toBe(false);
  });

  it.each([400, 401] as const)("the app's key refused at the exchange (invalid_client, %i): a page saying the server's settings are wrong, not that the code expired", async (status) => {
    const account = `dbid:oauth-app-refused-${status}`;
    addAccount(account);
    h.emulator.model.tokens.approveNextAuthorization(account);
    const trip = await startTrip(h);
    h.emulator.faults.inject({ route: 'oauth2/token', status, oauthError: 'invalid_client', description: 'Invalid client_id or client_secret' });
    const refused = await callback(trip.callbackUrl, trip.cookie);
    expect(refused.status).toBe(503);
    expect(refused.text).toMatch(/refused this server(&#39;|')s app key \(invalid_client/);
    expect(refused.text).toMatch(/DROPBOX_APP_KEY/);
    expect(refused.text).not.toMatch(/expired or was already used/);
    expect(await linked(account)).toBe(false);
    // The operator's to fix: logged as an error, with what Dropbox said.
    expect(lastCallbackRefusal()).toMatchObject({ level: 50, reason: 'app_credentials', detail: expect.stringMatching(/^invalid_client/) });
  });

  it('the user denies access on Dropbox: 400 saying so', async () => {
    const account = 'dbid:oauth-denied';
    addAccount(account);
    h.emulator.model.tokens.denyNextAuthorization();
    const trip = await startTrip(h);
    expect(trip.callbackUrl.searchParams.get('error')).toBe('access_denied');
    const denied = await callback(trip.callbackUrl, trip.cookie);
    expect(denied.status).toBe(400);
    expect(denied.text).toMatch(/did not authorize the app \(access_denied/);
    expect(await linked(account)).toBe(false);
    // The user's own choice: logged at info, with what Dropbox said.
    const refusal = lastCallbackRefusal();
    expect(refusal).toMatchObject({ level: 30, reason: 'denied', detail: expect.stringMatching(/^access_denied/) });
  });

  it('an expired code: 400', async () => {
    const account = 'dbid:oauth-expired';
    addAccount(account);
    h.emulator.model.tokens.approveNextAuthorization(account);
    h.emulator.model.tokens.codeLifetimeMs = 0;
    try {
      const trip = await startTrip(h);
      const expired = await callback(trip.callbackUrl, trip.cookie);
      expect(expired.status).toBe(400);
      expect(expired.text).toMatch(/expired/);
      // The operator's log says what Dropbox answered, not only that it refused.
      const refusal = lastCallbackRefusal();
      expect(refusal).toMatchObject({ level: 40, reason: 'code_refused', detail: expect.stringMatching(/invalid_grant|expired/) });
    } finally {
      h.emulator.model.tokens.codeLifetimeMs = 10 * 60_000;
    }
    expect(await linked(account)).toBe(false);
  });
});

describe('tokens at rest and in the open', () => {
  it('another key cannot read them and says why; no key at all says so too; status still answers', async () => {
    const account = 'dbid:oauth-alice';
    const wrongKey = new AccountStore(h.redis, { cipher: new TokenCipher(randomBytes(32)) });
    const account1 = (await wrongKey.get(account))!;
    expect(account1.ignore).toEqual([]); // the rest of the record reads fine
    expect(() => account1.credentials).toThrow(TokenDecryptError);
    expect(() => account1.credentials).toThrow(/another key .*TOKEN_ENCRYPTION_KEY/);
    const noKey = (await new AccountStore(h.redis).get(account))!;
    expect(() => noKey.credentials).toThrow(/encrypted but TOKEN_ENCRYPTION_KEY is not set/);
    // A value copied onto another account's record fails its authentication (bound to the account id).
    const raw = await h.redis.getBuffer(accountKeys(account).credentials);
    expect(() => cipher.decrypt(raw!, 'dbid:someone-else')).toThrow(/could not be decrypted/);
    expect((await h.api(`/accounts/${account}`)).status).toBe(200);
  });

  it('no token appears in the logs, the status API, the engine\'s events or the persisted actor snapshots', async () => {
    expect(secrets.size).toBeGreaterThanOrEqual(6);
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.some((l) => l.includes('account linked through OAuth'))).toBe(true);
    expect(events.length).toBeGreaterThan(0);
    const statuses = await (await h.api('/accounts')).text();
    const metrics = await h.api('/metrics');
    const metricsText = metrics.status === 200 ? await metrics.text() : '';
    const snapshots: string[] = [];
    for (const id of await h.engine.accounts.linkedIds()) snapshots.push(JSON.stringify(await h.redis.hgetall(accountKeys(id).actor)));
    const haystacks = { logs: logLines.join('\n'), statuses, metrics: metricsText, events: events.join('\n'), snapshots: snapshots.join('\n') };
    for (const secret of secrets) {
      for (const [where, text] of Object.entries(haystacks)) expect(text.includes(secret), `a secret in ${where}`).toBe(false);
    }
    expect(haystacks.logs).not.toContain(ADMIN_TOKEN);
  });
});

describe('Redis down while a browser is on the OAuth pages', () => {
  it('each page answers 503 as a page saying to try again, not the API\'s JSON; the admin route answers JSON', async () => {
    const link = await issueStartLink(h);
    await h.redisServer.kill();
    try {
      await waitUntil(async () => (await fetch(`${h.url}/readyz`)).status === 503, 5_000, 'Redis seen down');
      const pages = [
        await fetch(link.url, { redirect: 'manual' }),
        await fetch(`${h.url}/oauth/continue`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ ticket: link.url.searchParams.get('ticket')! }) }),
        await fetch(`${h.url}/oauth/callback?state=${'s'.repeat(43)}&code=c`, { redirect: 'manual' }),
      ];
      for (const response of pages) {
        expect(response.status, response.url).toBe(503);
        expect(response.headers.get('content-type'), response.url).toMatch(/^text\/html/);
        const text = await response.text();
        expect(text).toContain('<h1>Try again in a moment</h1>');
        expect(text).toContain('Start again with a new start link (mailroom link-url gives one)');
      }
      const api = await h.api('/oauth/start', { method: 'POST' });
      expect(api.status).toBe(503);
      expect(await api.json()).toMatchObject({ error: 'unavailable' });
    } finally {
      await h.redisServer.restart();
      await waitUntil(async () => (await fetch(`${h.url}/readyz`)).status === 200, 10_000, 'Redis back');
    }
  });
});
