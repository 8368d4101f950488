import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { pkceChallenge } from '../../src/dropbox-emulator/tokens.js';

/** The emulator's www.dropbox.com/oauth2/authorize and the authorization_code grant of /oauth2/token. */
let emulator: RunningEmulator;
const account = 'dbid:emu-oauth';
const redirectUri = 'http://127.0.0.1:9/cb?keep=1';
const verifier = 'v'.repeat(20) + '-verifier_0123456789abcdefghij';

beforeAll(async () => {
  emulator = await startEmulator({ appKey: 'key', appSecret: 'secret' });
  emulator.model.addAccount(account, { accessToken: 'unused' });
  emulator.model.addAccount('dbid:other', { accessToken: 'unused-2' });
});
afterAll(async () => emulator.close());

async function authorize(params: Record<string, string>): Promise<Response> {
  const url = new URL(`${emulator.url}/oauth2/authorize`);
  for (const [k, v] of Object.entries({ client_id: 'key', response_type: 'code', redirect_uri: redirectUri, token_access_type: 'offline', ...params })) url.searchParams.set(k, v);
  return fetch(url, { redirect: 'manual' });
}

async function codeFor(params: Record<string, string> = { code_challenge: pkceChallenge(verifier), code_challenge_method: 'S256' }): Promise<string> {
  emulator.model.tokens.approveNextAuthorization(account);
  const res = await authorize({ state: 's1', ...params });
  expect(res.status).toBe(302);
  const back = new URL(res.headers.get('location')!);
  expect(back.origin + back.pathname).toBe('http://127.0.0.1:9/cb');
  expect(back.searchParams.get('keep')).toBe('1');
  expect(back.searchParams.get('state')).toBe('s1');
  return back.searchParams.get('code')!;
}

async function token(params: Record<string, string>, asForm = false): Promise<{ status: number; body: Record<string, unknown> }> {
  const query = new URLSearchParams({ grant_type: 'authorization_code', client_id: 'key', redirect_uri: redirectUri, ...params });
  const res = asForm
    ? await fetch(`${emulator.url}/oauth2/token`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: query.toString() })
    : await fetch(`${emulator.url}/oauth2/token?${query}`, { method: 'POST' });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('emulator authorize + code exchange', () => {
  it('issues single-use codes that yield short-lived and refresh tokens with the PKCE verifier', async () => {
    const code = await codeFor();
    const ok = await token({ code, code_verifier: verifier }, true);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ token_type: 'bearer', expires_in: 14_400, account_id: account });
    expect(ok.body.access_token).toMatch(/^sl\./);
    expect(typeof ok.body.refresh_token).toBe('string');
    expect(ok.body.uid).toMatch(/^\d+$/);
    expect(emulator.model.authenticate(ok.body.access_token as string)).toEqual({ ok: true, accountId: account });
    expect(emulator.model.tokens.refresh(ok.body.refresh_token as string)?.accountId).toBe(account);
    // Used once.
    expect(await token({ code, code_verifier: verifier })).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it('refuses a wrong or missing verifier, another redirect_uri, another client', async () => {
    expect(await token({ code: await codeFor(), code_verifier: verifier + 'x' })).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_description: 'invalid code verifier' } });
    expect(await token({ code: await codeFor() })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await token({ code: await codeFor(), code_verifier: verifier, redirect_uri: 'http://127.0.0.1:9/other' })).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_description: 'redirect_uri mismatch' } });
    expect(await token({ code: await codeFor(), code_verifier: verifier, client_id: 'nope' })).toMatchObject({ status: 400, body: { error: 'invalid_client' } });
  });

  it('without PKCE the client secret is required', async () => {
    expect(await token({ code: await codeFor({}) })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await token({ code: await codeFor({}), client_secret: 'secret' })).toMatchObject({ status: 200, body: { account_id: account } });
  });

  it('answers invalid authorize requests with an error page, and a denial with a redirect', async () => {
    expect((await authorize({ client_id: 'nope' })).status).toBe(400);
    expect((await authorize({ response_type: 'token' })).status).toBe(400);
    expect((await authorize({ redirect_uri: 'not a url' })).status).toBe(400);
    expect((await authorize({ code_challenge: pkceChallenge(verifier), code_challenge_method: 'plain' })).status).toBe(400);
    // Two accounts and nothing queued: no one to sign in as.
    const nobody = await authorize({});
    expect(nobody.status).toBe(400);
    expect(await nobody.text()).toMatch(/approveNextAuthorization/);
    emulator.model.tokens.denyNextAuthorization();
    const denied = await authorize({ state: 'st' });
    expect(denied.status).toBe(302);
    const back = new URL(denied.headers.get('location')!);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe('st');
    expect(back.searchParams.has('code')).toBe(false);
  });
});
