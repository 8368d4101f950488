import { createHash } from 'node:crypto';
import type { Hono } from 'hono';
import type { EmulatorContext, EmulatorDeps, EmulatorEnv } from './http-context.js';
import { faultResponse } from './call-guard.js';

const ROUTE = 'oauth2/token';
const SCOPE = 'account_info.read files.content.read files.metadata.read';

function oauthError(c: EmulatorContext, error: string, description: string, status: 400 | 401 = 400): Response {
  return c.json({ error, error_description: description }, status);
}

/**
 * The SDK sends its refresh parameters in the query string with an empty JSON body; other clients send
 * a form body and may put the app credentials in Basic auth. Accept all three.
 */
async function tokenParameters(c: EmulatorContext): Promise<Record<string, string>> {
  const params: Record<string, string> = { ...c.req.query() };
  const contentType = c.req.header('content-type') ?? '';
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    for (const [key, value] of new URLSearchParams(await c.req.text())) params[key] = value;
  }
  const basic = /^Basic\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
  if (basic) {
    const [id, ...secret] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':');
    params.client_id ??= id ?? '';
    params.client_secret ??= secret.join(':');
  }
  return params;
}

export function registerOAuthRoute(app: Hono<EmulatorEnv>, deps: EmulatorDeps): void {
  app.post(`/${ROUTE}`, async (c) => {
    deps.stats.tokenRequests += 1;
    const fault = await faultResponse(c, deps, ROUTE, undefined, deps.faults.take(ROUTE, undefined));
    if (fault) return fault;
    const params = await tokenParameters(c);
    if (params.grant_type !== 'refresh_token' && params.grant_type !== 'authorization_code') {
      return oauthError(c, 'unsupported_grant_type', `grant_type "${params.grant_type ?? ''}" is not supported here`);
    }
    if (!params.client_id) return oauthError(c, 'invalid_request', 'No auth function available for given request');
    const wrongKey = deps.appKey !== undefined && params.client_id !== deps.appKey;
    const wrongSecret = deps.appSecret !== undefined && params.client_secret !== undefined && params.client_secret !== deps.appSecret;
    if (wrongKey || wrongSecret) return oauthError(c, 'invalid_client', 'Invalid client_id or client_secret');
    if (params.grant_type === 'authorization_code') return exchangeCode(c, deps, params);
    const issued = deps.model.tokens.refresh(params.refresh_token ?? '');
    if (!issued) return oauthError(c, 'invalid_grant', 'refresh token is invalid or revoked');
    return c.json({ access_token: issued.accessToken, token_type: 'bearer', expires_in: issued.expiresIn });
  });
}

/** Dropbox's uid: a number as a string, stable per account. */
function uidOf(accountId: string): string {
  return String(createHash('sha256').update(accountId).digest().readUInt32BE(0));
}

function exchangeCode(c: EmulatorContext, deps: EmulatorDeps, params: Record<string, string>): Response {
  if (!params.code) return oauthError(c, 'invalid_request', 'No code given');
  const result = deps.model.tokens.redeemCode({
    code: params.code,
    clientId: params.client_id!,
    redirectUri: params.redirect_uri,
    codeVerifier: params.code_verifier,
    clientAuthenticated: params.client_secret !== undefined,
  });
  if ('error' in result) return oauthError(c, result.error, result.description);
  return c.json({
    access_token: result.accessToken,
    token_type: 'bearer',
    expires_in: result.expiresIn,
    ...(result.refreshToken ? { refresh_token: result.refreshToken } : {}),
    scope: SCOPE,
    uid: uidOf(result.accountId),
    account_id: result.accountId,
  });
}

function authorizePage(c: EmulatorContext, message: string): Response {
  return c.text(`Dropbox emulator: this authorization request is invalid: ${message}`, 400);
}

/**
 * www.dropbox.com/oauth2/authorize, auto-approving: instead of a login and consent page, the decision
 * a test queued (`model.tokens.approveNextAuthorization(accountId)` / `denyNextAuthorization()`), or,
 * when nothing is queued and the emulator holds exactly one account, that account's approval. Invalid
 * requests get an error page, not a redirect (as on Dropbox: the redirect URI is not trusted yet).
 */
export function registerAuthorizeRoute(app: Hono<EmulatorEnv>, deps: EmulatorDeps): void {
  app.get('/oauth2/authorize', (c) => {
    const q = c.req.query();
    if (!q.client_id) return authorizePage(c, 'client_id is missing');
    if (deps.appKey !== undefined && q.client_id !== deps.appKey) return authorizePage(c, 'invalid client_id');
    if (q.response_type !== 'code') return authorizePage(c, `response_type must be "code" here (got ${JSON.stringify(q.response_type ?? '')})`);
    let redirect: URL;
    try {
      redirect = new URL(q.redirect_uri ?? '');
    } catch {
      return authorizePage(c, 'redirect_uri must be an absolute URL (the emulator has no page showing the code)');
    }
    if (redirect.protocol !== 'http:' && redirect.protocol !== 'https:') return authorizePage(c, 'redirect_uri must be http(s)');
    if (q.code_challenge !== undefined) {
      if (q.code_challenge_method !== 'S256') return authorizePage(c, 'code_challenge_method must be S256');
      if (!/^[A-Za-z0-9_-]{43,128}$/.test(q.code_challenge)) return authorizePage(c, 'code_challenge must be 43-128 base64url characters');
    }
    if (q.token_access_type !== undefined && !['offline', 'online', 'legacy'].includes(q.token_access_type)) {
      return authorizePage(c, 'token_access_type must be offline, online or legacy');
    }

    const queued = deps.model.tokens.takeAuthorizationDecision();
    const only = deps.model.accountIds();
    const decision = queued ?? (only.length === 1 ? { approve: only[0]! } : undefined);
    if (!decision) return authorizePage(c, 'no user to sign in as: call model.tokens.approveNextAuthorization(accountId) first');
    if (q.state !== undefined) redirect.searchParams.set('state', q.state);
    if ('deny' in decision) {
      redirect.searchParams.set('error', 'access_denied');
      redirect.searchParams.set('error_description', 'The user chose not to give your app access to their Dropbox account.');
      return c.redirect(redirect.href, 302);
    }
    if (!deps.model.hasAccount(decision.approve)) return authorizePage(c, `no account ${decision.approve} in the emulator`);
    const code = deps.model.tokens.issueCode({
      accountId: decision.approve,
      clientId: q.client_id,
      redirectUri: q.redirect_uri,
      codeChallenge: q.code_challenge,
      offline: q.token_access_type === 'offline',
    });
    redirect.searchParams.set('code', code);
    return c.redirect(redirect.href, 302);
  });
}
