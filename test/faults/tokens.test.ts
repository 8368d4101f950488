import { SimulatedClock } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_KEY, expectedMirror, readMirror, startHarness, waitUntil, type Harness, expectConverged as expectAccountConverged } from '../support/sync-harness.js';

/**
 * Tokens: a short-lived access token that expires mid-life is refreshed once and the sync goes on;
 * a revoked refresh token or an invalid access token parks the account in `awaitingRelink` with an
 * `auth` error telling the user to re-link, and the re-link ends the wait; the app's own key or
 * secret refused is not the account's fault: a backoff, retried, telling the operator what to fix.
 *
 * The engine runs on a SimulatedClock that the test never advances: a backoff deadline can then
 * never pass by itself, so an account that leaves a wait did so because of the re-link.
 */
let h: Harness;
const clock = new SimulatedClock();

/** Every answer the engine got from the emulator, by route and status (the engine fetches through globalThis.fetch). */
const answers: { route: string; status: number }[] = [];
const realFetch = globalThis.fetch;

beforeAll(async () => {
  clock.set(Date.now());
  h = await startHarness({ engine: { clock } });
  const emulatorOrigin = h.emulator.url;
  globalThis.fetch = async (input, init) => {
    const response = await realFetch(input, init);
    const url = input instanceof Request ? input.url : String(input);
    if (url.startsWith(emulatorOrigin)) answers.push({ route: new URL(url).pathname.replace(/^\/(2\/)?/, ''), status: response.status });
    return response;
  };
});
afterAll(async () => {
  globalThis.fetch = realFetch;
  await h.close();
});

const at = new Date('2024-07-07T07:07:07Z');




async function put(accountId: string, body: Record<string, unknown>): Promise<Response> {
  return h.api(`/accounts/${accountId}`, { method: 'PUT', body: JSON.stringify(body) });
}

const count = (route: string, status?: number) => answers.filter((a) => a.route === route && (status === undefined || a.status === status)).length;

describe('an access token that expires', () => {
  it('is refreshed with the refresh token: once when linking, once after a 401 expired_access_token', async () => {
    const account = 'dbid:faults-token-expiry';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'never-given-to-the-engine', refreshToken: 'refresh-expiry' });
    model.writeFile(account, '/posts/first.md', '# First', { clientModified: at });
    const tokenRequests = h.emulator.stats.tokenRequests;

    // Only a refresh token: the first call gets an access token from /oauth2/token (app key + secret checked).
    expect((await put(account, { refreshToken: 'refresh-expiry' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder') > 0, 10_000, 'the first listing');
    await h.waitForIdle(account);
    expect(h.emulator.stats.tokenRequests).toBe(tokenRequests + 1);
    expect(count('oauth2/token', 200)).toBe(1);
    await expectAccountConverged(h, account);

    // The token expires on Dropbox's side (the SDK still believes it valid for hours).
    model.expireAccessToken(account);
    model.writeFile(account, '/posts/second.md', '# Second', { clientModified: at });
    answers.length = 0;
    await h.engine.notify([account]);
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/second.md') > 0, 10_000, 'the download after the refresh');
    await h.waitForIdle(account);

    expect(h.emulator.stats.tokenRequests).toBe(tokenRequests + 2); // exactly one more refresh
    expect(count('files/list_folder/continue', 401)).toBe(1); // exactly one 401
    expect(count('oauth2/token', 200)).toBe(1);
    expect(count('files/list_folder/continue', 200)).toBe(1); // then the same call, once, succeeded
    expect(answers.filter((a) => a.status === 401)).toHaveLength(1);
    await expectAccountConverged(h, account);
  });

  it('a 5xx from /oauth2/token during that refresh is retried inside the call: no auth error, no backoff', async () => {
    const account = 'dbid:faults-token-refresh-500';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'unused-500', refreshToken: 'refresh-500' });
    model.writeFile(account, '/posts/a.md', '# A', { clientModified: at });
    expect((await put(account, { refreshToken: 'refresh-500' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder') > 0, 10_000, 'the first listing');
    await h.waitForIdle(account);

    model.expireAccessToken(account);
    model.writeFile(account, '/posts/b.md', '# B', { clientModified: at });
    h.emulator.faults.inject({ route: 'oauth2/token', status: 503 });
    const states: string[] = [];
    const sub = h.engine.host.actor(account)!.subscribe((snap) => states.push(String(snap.value)));
    answers.length = 0;
    await h.engine.notify([account]);
    // The in-call retry sleeps a few (fake) ms through the engine clock: nudge it while waiting.
    await waitUntil(() => {
      clock.increment(10);
      return h.emulator.stats.downloads(account, '/posts/b.md') > 0;
    }, 10_000, 'the download after the retried refresh');
    await h.waitForIdle(account);
    sub.unsubscribe();

    expect(count('oauth2/token', 503)).toBe(1);
    expect(count('oauth2/token', 200)).toBe(1);
    expect(states).not.toContain('backoff');
    await expectAccountConverged(h, account);
  });
});

describe('credentials Dropbox refuses', () => {
  it('a refresh token revoked while the access token expires: the 401 leads to a refresh that fails, and the error says to re-link', async () => {
    const account = 'dbid:faults-token-expired-revoked';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'unused-er', refreshToken: 'refresh-er' });
    model.writeFile(account, '/posts/a.md', '# A', { clientModified: at });
    expect((await put(account, { refreshToken: 'refresh-er' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder') > 0, 10_000, 'the first listing');
    await h.waitForIdle(account);

    model.expireAccessToken(account);
    // The emulator has no public "revoke only the refresh token"; reach into its registry (test-only).
    (model.tokens as unknown as { refreshTokens: Map<string, string> }).refreshTokens.delete('refresh-er');
    model.writeFile(account, '/posts/b.md', '# B', { clientModified: at });
    await h.engine.notify([account]);
    await waitUntil(async () => (await h.status(account)).state === 'awaitingRelink', 10_000, 'the wait for a re-link');
    const parked = await h.status(account);
    expect(parked.lastError?.kind).toBe('auth');
    expect(parked.lastError?.message).toMatch(/re-link/);

    model.tokens.registerRefreshToken(account, 'refresh-er-2');
    expect((await put(account, { refreshToken: 'refresh-er-2' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/b.md') > 0, 10_000, 'the sync after the re-link');
    await h.waitForIdle(account);
    await expectAccountConverged(h, account);
  });

  it('a revoked refresh token: an auth error saying to re-link, and the account waits for it', async () => {
    const account = 'dbid:faults-token-revoked';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'unused-revoked', refreshToken: 'refresh-good' });
    model.writeFile(account, '/posts/hello.md', '# Hello', { clientModified: at });

    // The user revoked the app: Dropbox answers invalid_grant to the refresh.
    expect((await put(account, { refreshToken: 'refresh-revoked' })).status).toBe(200);
    await waitUntil(async () => (await h.status(account)).state === 'awaitingRelink', 10_000, 'the wait for a re-link');
    const parked = await h.status(account);
    expect(parked.lastError?.kind).toBe('auth');
    expect(parked.lastError?.message).toMatch(/re-link/);
    expect(parked.lastError?.message).not.toContain('refresh-revoked'); // no secret in the message
    expect(h.emulator.stats.calls(account)).toBe(0); // nothing reached the API
    expect(await readMirror(h.dataDir, account)).toEqual(new Map());

    // Fake time never moves, but nothing waits for time here: only the re-link ends the wait.
    expect((await put(account, { refreshToken: 'refresh-good' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder') > 0, 10_000, 'the listing after the re-link');
    await h.waitForIdle(account);
    await expectAccountConverged(h, account);
  });

  it('an invalid access token: an auth error saying to re-link; a re-link with a good token syncs', async () => {
    const account = 'dbid:faults-token-invalid';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'access-good' });
    model.writeFile(account, '/posts/one.md', '# One', { clientModified: at });
    expect((await put(account, { accessToken: 'access-good' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder') > 0, 10_000, 'the first listing');
    await h.waitForIdle(account);
    await expectAccountConverged(h, account);

    // The token is revoked (the user unlinked the app on dropbox.com): 401 invalid_access_token.
    model.tokens.revokeAccount(account);
    model.writeFile(account, '/posts/two.md', '# Two', { clientModified: at });
    model.remove(account, '/posts/one.md');
    await h.engine.notify([account]);
    await waitUntil(async () => (await h.status(account)).state === 'awaitingRelink', 10_000, 'the wait for a re-link');
    const parked = await h.status(account);
    expect(parked.lastError?.kind).toBe('auth');
    expect(parked.lastError?.message).toMatch(/invalid_access_token.*re-link/);
    // The mirror is left as it was: nothing deleted on a failed listing.
    expect((await readMirror(h.dataDir, account)).has('/posts/one.md')).toBe(true);

    model.tokens.registerAccessToken(account, 'access-new');
    expect((await put(account, { accessToken: 'access-new' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/two.md') > 0, 10_000, 'the sync after the re-link');
    await h.waitForIdle(account);
    await expectAccountConverged(h, account);
    expect((await readMirror(h.dataDir, account)).has('/posts/one.md')).toBe(false);
  });
});

describe("the app's own credentials refused", () => {
  it("a wrong app secret is not the account's fault: a backoff that retries, saying which setting to fix, never a wait for a re-link", async () => {
    const account = 'dbid:faults-token-app-secret';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'unused-app-secret', refreshToken: 'refresh-app-secret' });
    model.writeFile(account, '/posts/a.md', '# A', { clientModified: at });
    // A process of the same deployment with a mistyped DROPBOX_APP_SECRET: /oauth2/token answers invalid_client.
    const misconfigured = await h.startPeer({
      ownerId: 'peer-wrong-secret',
      dropbox: { appKey: APP_KEY, appSecret: 'not-the-app-secret', hosts: { api: h.emulator.url, content: h.emulator.url }, callTimeoutMs: 2_000 },
    });
    try {
      const linked = await misconfigured.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ refreshToken: 'refresh-app-secret' }) });
      expect(linked.status).toBe(200);
      await waitUntil(async () => (await misconfigured.engine.status(account))?.lastError?.kind === 'app_credentials', 10_000, 'the refused app secret');
      const status = (await misconfigured.engine.status(account))!;
      expect(status.state).not.toBe('awaitingRelink');
      expect(status.lastError?.message).toMatch(/DROPBOX_APP_SECRET/);
      expect(status.lastError?.message).not.toContain('not-the-app-secret');
      expect((await misconfigured.engine.mailbox.read(account)).status).toBe('running');
    } finally {
      await misconfigured.engine.unlink(account);
    }
  });

  it("invalid_client answered with a 401 (RFC 6749 allows it) is the app's fault too: a backoff naming the app's settings, not a wait for a re-link", async () => {
    const account = 'dbid:faults-token-app-401';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'unused-app-401', refreshToken: 'refresh-app-401' });
    model.writeFile(account, '/posts/a.md', '# A', { clientModified: at });
    // Only a refresh token: the first call refreshes, and /oauth2/token refuses the app with a 401.
    h.emulator.faults.inject({ route: 'oauth2/token', status: 401, oauthError: 'invalid_client', description: 'Invalid client_id or client_secret' });
    expect((await put(account, { refreshToken: 'refresh-app-401' })).status).toBe(200);
    await waitUntil(async () => ['backoff', 'awaitingRelink'].includes((await h.status(account)).state), 10_000, 'the refused refresh');
    const status = await h.status(account);
    expect(status.state).toBe('backoff');
    expect(status.lastError?.kind).toBe('app_credentials');
    expect(status.lastError?.message).toMatch(/refused the app's key or secret/);
    expect(status.lastError?.message).toMatch(/DROPBOX_APP_KEY and DROPBOX_APP_SECRET/);
    expect(status.lastError?.message).not.toMatch(/re-link/);
    expect(h.emulator.stats.calls(account)).toBe(0);

    // The settings fixed (here: the fault spent), a resync syncs the same credentials: no re-link was needed.
    expect((await h.api(`/accounts/${account}/resync`, { method: 'POST' })).status).toBe(202);
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/a.md') > 0, 10_000, 'the sync after the resync');
    await h.waitForIdle(account);
    await expectAccountConverged(h, account);
  });

  it("invalid_client with a 401 to the refresh after a 401 expired_access_token is the app's fault too", async () => {
    const account = 'dbid:faults-token-app-401-expired';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'unused-app-401e', refreshToken: 'refresh-app-401e' });
    model.writeFile(account, '/posts/a.md', '# A', { clientModified: at });
    expect((await put(account, { refreshToken: 'refresh-app-401e' })).status).toBe(200);
    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder') > 0, 10_000, 'the first listing');
    await h.waitForIdle(account);

    model.expireAccessToken(account);
    model.writeFile(account, '/posts/b.md', '# B', { clientModified: at });
    h.emulator.faults.inject({ route: 'oauth2/token', status: 401, oauthError: 'invalid_client', description: 'Invalid client_id or client_secret' });
    await h.engine.notify([account]);
    await waitUntil(async () => ['backoff', 'awaitingRelink'].includes((await h.status(account)).state), 10_000, 'the refused refresh');
    const status = await h.status(account);
    expect(status.state).toBe('backoff');
    expect(status.lastError?.kind).toBe('app_credentials');
    expect(status.lastError?.message).toMatch(/DROPBOX_APP_KEY and DROPBOX_APP_SECRET/);
  });
});
