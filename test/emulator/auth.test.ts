import { Dropbox, DropboxAuth } from 'dropbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDropboxFetch } from '../../src/dropbox/origin-rewrite.js';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { responseError, sdkFor } from './emulator-client.js';

const accountId = 'dbid:AAH_auth';
let emulator: RunningEmulator;

beforeAll(async () => {
  emulator = await startEmulator({ appKey: 'app-key', appSecret: 'app-secret' });
  emulator.model.addAccount(accountId, { accessToken: 'initial-token', refreshToken: 'refresh-me' });
  emulator.model.writeFile(accountId, '/a.txt', 'a');
});
afterAll(async () => emulator.close());

/** A client whose DropboxAuth is reachable; refresh uses the auth's own fetch, so it gets the same one. */
function refreshingClient(): { dbx: Dropbox; auth: DropboxAuth } {
  const fetch = createDropboxFetch({ api: emulator.url, content: emulator.url }, { timeoutMs: 5_000 });
  const auth = new DropboxAuth({ refreshToken: 'refresh-me', clientId: 'app-key', clientSecret: 'app-secret', fetch });
  return { dbx: new Dropbox({ auth, fetch }), auth };
}

describe('OAuth refresh with the SDK', () => {
  it('the SDK refreshes before its first call when no expiry is known, via query parameters', async () => {
    emulator.model.expireAccessToken(accountId);
    const { dbx, auth } = refreshingClient();
    const tokenRequestsBefore = emulator.stats.tokenRequests;
    const listing = await dbx.filesListFolder({ path: '', recursive: true });
    expect(listing.result.entries.map((e) => e.path_lower)).toEqual(['/a.txt']);
    expect(emulator.stats.tokenRequests).toBe(tokenRequestsBefore + 1);
    expect(auth.getAccessToken()).toMatch(/^sl\./);
    expect(auth.getAccessTokenExpiresAt().getTime()).toBeGreaterThan(Date.now() + 14_000 * 1000);

    // With an expiry 4 h away the SDK does not refresh again.
    await dbx.filesListFolder({ path: '', recursive: true });
    expect(emulator.stats.tokenRequests).toBe(tokenRequestsBefore + 1);
  });

  it('a server-side expiry surfaces as 401 (the SDK is not reactive); marking the token stale recovers', async () => {
    const { dbx, auth } = refreshingClient();
    await dbx.filesListFolder({ path: '' });
    emulator.model.expireAccessToken(accountId);

    const expired = await responseError(dbx.filesListFolder({ path: '' }));
    expect(expired.status).toBe(401);
    expect(expired.error.error['.tag']).toBe('expired_access_token');

    // What an engine does on expired_access_token: force the next call to refresh.
    auth.setAccessTokenExpiresAt(new Date(0));
    await expect(dbx.filesListFolder({ path: '' })).resolves.toMatchObject({ status: 200 });
  });

  it('a plain new Dropbox({ refreshToken, clientId, clientSecret, fetch }) works after the server expired its token', async () => {
    emulator.model.expireAccessToken(accountId);
    const dbx = sdkFor(emulator.url, { refreshToken: 'refresh-me', clientId: 'app-key', clientSecret: 'app-secret' });
    await expect(dbx.filesListFolder({ path: '' })).resolves.toMatchObject({ status: 200 });
  });

  it('a revoked refresh token fails the call with 400 invalid_grant', async () => {
    const dbx = sdkFor(emulator.url, { refreshToken: 'not-a-refresh-token', clientId: 'app-key' });
    const error = await responseError(dbx.filesListFolder({ path: '' }));
    expect(error.status).toBe(400);
    expect(error.error.error).toBe('invalid_grant');
    expect(typeof error.error.error_description).toBe('string');
  });

  it('accepts a form body and rejects a wrong app secret', async () => {
    const form = await fetch(`${emulator.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=refresh_token&refresh_token=refresh-me&client_id=app-key&client_secret=app-secret',
    });
    expect(form.status).toBe(200);
    expect(await form.json()).toMatchObject({ token_type: 'bearer', expires_in: 14400 });

    const wrong = await fetch(`${emulator.url}/oauth2/token?grant_type=refresh_token&refresh_token=refresh-me&client_id=app-key&client_secret=nope`, {
      method: 'POST',
    });
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ error: 'invalid_client' });
  });

  it('requires an Authorization header on API routes', async () => {
    const response = await fetch(`${emulator.url}/2/files/list_folder`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"path": ""}',
    });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('Authorization');
  });
});
