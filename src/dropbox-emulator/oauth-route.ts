import type { Hono } from 'hono';
import type { EmulatorContext, EmulatorDeps, EmulatorEnv } from './http-context.js';
import { faultResponse } from './call-guard.js';

const ROUTE = 'oauth2/token';

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
    if (params.grant_type !== 'refresh_token') {
      return oauthError(c, 'unsupported_grant_type', `grant_type "${params.grant_type ?? ''}" is not supported here`);
    }
    if (!params.client_id) return oauthError(c, 'invalid_request', 'No auth function available for given request');
    const wrongKey = deps.appKey !== undefined && params.client_id !== deps.appKey;
    const wrongSecret = deps.appSecret !== undefined && params.client_secret !== undefined && params.client_secret !== deps.appSecret;
    if (wrongKey || wrongSecret) return oauthError(c, 'invalid_client', 'Invalid client_id or client_secret');
    const issued = deps.model.tokens.refresh(params.refresh_token ?? '');
    if (!issued) return oauthError(c, 'invalid_grant', 'refresh token is invalid or revoked');
    return c.json({ access_token: issued.accessToken, token_type: 'bearer', expires_in: issued.expiresIn });
  });
}
