import { createHash } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../logger.js';
import { redactSecrets } from '../observability/redact.js';
import { authorizeEndpoint, buildAuthorizeUrl } from '../oauth/authorize-url.js';
import { exchangeCode, OAuthExchangeError } from '../oauth/code-exchange.js';
import { codeChallengeOf, createCodeVerifier, randomToken } from '../oauth/pkce.js';
import { START_TICKET_TTL_SECONDS, OAuthStartTickets } from '../oauth/start-tickets.js';
import { OAuthStateStore, STATE_TTL_SECONDS } from '../oauth/state-store.js';
import { isRedisUnavailable } from '../redis/redis-errors.js';
import type { RedisClient } from '../redis/scripts.js';
import { adminBearerCheck, requireAdmin } from './admin-auth.js';

export interface OAuthRouteOptions {
  engine: Engine;
  redis: RedisClient;
  adminToken: string;
  log: Logger;
}

/**
 * The cookie holding the browser nonce that binds `state` to the browser that started the flow: one
 * per flow, named after its state, so a second link started in the same browser (another tab, or
 * starting again while on Dropbox's page) does not break the first.
 */
export function oauthCookieName(state: string): string {
  return `mailroom_oauth_${createHash('sha256').update(state).digest('hex').slice(0, 16)}`;
}

const GET_A_LINK = 'Get a one-time start link: run "mailroom link-url", or POST /oauth/start with Authorization: Bearer <ADMIN_TOKEN> and open the url it answers';
const NEEDS_LINK = `Starting a Dropbox link needs a one-time start link. ${GET_A_LINK}. (A script may send Authorization: Bearer <ADMIN_TOKEN> with this GET instead.)`;
const STALE_LINK = `This start link is unknown, already used or expired: each opens once, within ${START_TICKET_TTL_SECONDS / 60} minutes. ${GET_A_LINK}.`;
const CONFIRM = `Continue to Dropbox, sign in to the account to sync with Mailroom and allow the app. This link works once, within ${START_TICKET_TTL_SECONDS / 60} minutes of when it was made.`;
const TOKEN_IN_URL = `The admin token is no longer accepted in the URL (?token=): URLs end up in browser history and proxy logs. ${GET_A_LINK}. If what you sent was the admin token, consider changing ADMIN_TOKEN.`;
/** Where a failed callback sends its reader: /oauth/start itself no longer opens without a start link. */
const START_AGAIN = 'Start again with a new start link (mailroom link-url gives one)';
const NOT_CONFIGURED = 'Set DROPBOX_APP_KEY (the app key of your Dropbox app) to link accounts through Dropbox.';

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function page(c: Context, status: 200 | 400 | 401 | 413 | 500 | 502 | 503, title: string, message: string, more = '', policy = "default-src 'none'"): Response {
  c.header('Cache-Control', 'no-store');
  c.header('Referrer-Policy', 'no-referrer');
  c.header('Content-Security-Policy', policy);
  return c.html(
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>${more}</body></html>`,
    status,
  );
}

/** The largest body `POST /oauth/continue` reads: a form with one 43-character ticket. */
const CONTINUE_BODY_LIMIT = 4 * 1024;

/**
 * Linking an account the way Dropbox apps do: the OAuth 2 code flow with offline access and PKCE.
 *
 * - `POST /oauth/start` (admin token) answers a one-time start link, `GET /oauth/start?ticket=…`:
 *   a browser opening a link cannot send the admin token as a header, and the token must not be in
 *   a URL (see start-tickets.ts).
 * - `GET /oauth/start?ticket=…` answers a page whose button posts the ticket to `POST
 *   /oauth/continue`, which spends it. Not the GET: chat apps and mail filters fetch a link before
 *   the person it was sent to opens it, and would spend it.
 * - `POST /oauth/continue` (the ticket, once, within its TTL) or `GET /oauth/start` with
 *   `Authorization: Bearer` (scripts that follow the redirect themselves; `?token=` is refused)
 *   stores `state` -> PKCE verifier in Redis for ten minutes, sets an HttpOnly, SameSite=Lax cookie
 *   with a random nonce bound to that state, and redirects to Dropbox's authorize page.
 * - `GET /oauth/callback` (no admin token: reached by Dropbox's redirect) takes the state once,
 *   checks the cookie, exchanges the code with the verifier, links the account under the id Dropbox
 *   returns (its ignore patterns kept on a re-link) and starts its first sync.
 *
 * Open the start URL on the same host as the redirect URI, or the cookie will not come back.
 */
export function oauthRoutes(options: OAuthRouteOptions): Hono {
  const { engine, log } = options;
  const settings = engine.options.dropbox;
  const states = new OAuthStateStore(options.redis, engine.options.tokenCipher);
  const tickets = new OAuthStartTickets(options.redis);
  const isAdmin = adminBearerCheck(options.adminToken);

  /**
   * Where a browser reaches this server: the redirect URI's origin when OAUTH_REDIRECT_URL is set (the
   * public origin behind a proxy, and the host the state cookie must be set on to come back to the
   * callback), else the origin the request came to.
   */
  const publicOrigin = (c: Context) => new URL(settings.redirectUrl ?? c.req.url).origin;
  /**
   * The start route as the browser must ask for it: beside the public callback when
   * OAUTH_REDIRECT_URL ends in this server's own `/oauth/callback` (a proxy may mount the server
   * under a path prefix the request here never shows), else the path this request came to (a
   * proxy that gives the callback an alias of its own passes the rest through unchanged). Slashes
   * are merged first, as a proxy does: a path starting `//` would name another host.
   */
  const publicStartPath = (c: Context) => {
    const callback = settings.redirectUrl ? new URL(settings.redirectUrl).pathname.replace(/\/{2,}/g, '/').replace(/(.)\/$/, '$1') : '';
    return callback.endsWith('/oauth/callback') ? `${callback.slice(0, -'/callback'.length)}/start` : c.req.path;
  };
  const routes = new Hono();

  // A browser's routes answer a failure as a page too (Redis gone, a bug), saying what to do; the
  // admin API's POST /start answers JSON as every other API route does (app.ts).
  routes.onError((error, c) => {
    if (c.req.method === 'POST' && c.req.path.endsWith('/start')) throw error;
    if (isRedisUnavailable(error)) {
      log.warn({ path: c.req.path, err: error.message }, 'OAuth page failed: Redis unavailable');
      return page(c, 503, 'Try again in a moment', `The server cannot reach its database right now. In a moment, reload this page; if it then says the link was used or expired: ${START_AGAIN}.`);
    }
    log.error({ path: c.req.path, err: error }, 'OAuth page failed');
    return page(c, 500, 'Link failed', `Something went wrong on the server (its log says what). ${START_AGAIN}.`);
  });

  routes.post('/start', requireAdmin(options.adminToken), async (c) => {
    c.header('Cache-Control', 'no-store');
    if (!settings.appKey) return c.json({ error: 'oauth_not_configured', message: NOT_CONFIGURED }, 503);
    const { ticket, expiresInMs } = await tickets.issue();
    const url = new URL(publicStartPath(c), publicOrigin(c));
    url.searchParams.set('ticket', ticket);
    log.info({ expiresInMs }, 'OAuth start link issued');
    return c.json({ url: url.href, expiresInMs });
  });

  const refuse = (c: Context, reason: string, message: string, level: 'info' | 'warn' = 'info') => {
    log[level]({ reason }, 'OAuth start refused');
    c.header('WWW-Authenticate', 'Bearer');
    return page(c, 401, 'Not allowed', message);
  };

  /** The authorization itself: a state bound to this browser by a cookie, then Dropbox's page. */
  const beginAuthorization = async (c: Context, callbackPath: string, status: 302 | 303) => {
    const redirectUri = settings.redirectUrl ?? new URL(callbackPath, c.req.url).href;
    const state = randomToken();
    const browserNonce = randomToken();
    const codeVerifier = createCodeVerifier();
    await states.put(state, { browserNonce, codeVerifier, redirectUri, createdAt: engine.clock.now() });
    const callback = new URL(redirectUri);
    setCookie(c, oauthCookieName(state), browserNonce, {
      path: callback.pathname,
      httpOnly: true,
      sameSite: 'Lax',
      secure: callback.protocol === 'https:',
      maxAge: STATE_TTL_SECONDS,
    });
    c.header('Cache-Control', 'no-store');
    c.header('Referrer-Policy', 'no-referrer');
    const location = buildAuthorizeUrl({ endpoint: authorizeEndpoint(settings), clientId: settings.appKey!, redirectUri, state, codeChallenge: codeChallengeOf(codeVerifier) });
    return c.redirect(location, status);
  };

  routes.get('/start', async (c) => {
    // Refused even when it is the right token: it is in a URL now, and accepting it would keep such
    // links (bookmarks, scripts) alive. A warning, since the operator may want to change the token.
    if (c.req.query('token') !== undefined) return refuse(c, 'token_in_url', TOKEN_IN_URL, 'warn');
    const ticket = c.req.query('ticket');
    if (ticket !== undefined) {
      if (!(await tickets.isLive(ticket))) return refuse(c, 'unknown_ticket', STALE_LINK);
      if (!settings.appKey) return page(c, 503, 'OAuth is not configured', NOT_CONFIGURED);
      // Relative: the browser resolves it beside the path it opened, under any prefix a proxy adds.
      // The form may lead on to Dropbox's page (the redirect after it counts for form-action).
      const form = `<form method="post" action="continue"><input type="hidden" name="ticket" value="${escapeHtml(ticket)}"><button type="submit">Continue to Dropbox</button></form>`;
      const policy = `default-src 'none'; form-action 'self' ${new URL(authorizeEndpoint(settings)).origin}`;
      return page(c, 200, 'Link a Dropbox account', CONFIRM, form, policy);
    }
    if (!isAdmin(c.req.header('Authorization'))) return refuse(c, 'no_credentials', NEEDS_LINK);
    if (!settings.appKey) return page(c, 503, 'OAuth is not configured', NOT_CONFIGURED);
    return beginAuthorization(c, c.req.path.replace(/\/start$/, '/callback'), 302);
  });

  routes.post(
    '/continue',
    bodyLimit({
      maxSize: CONTINUE_BODY_LIMIT,
      // `Connection: close`: the unread rest of the body is still on the wire (see webhook-routes.ts).
      onError: (c) => {
        c.header('Connection', 'close');
        return page(c, 413, 'Not allowed', 'The request is too large for a start link.');
      },
    }),
    async (c) => {
      // Before the ticket is spent: it stays good for a server that can use it.
      if (!settings.appKey) return page(c, 503, 'OAuth is not configured', NOT_CONFIGURED);
      const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
      const ticket = typeof form.ticket === 'string' ? form.ticket : undefined;
      if (!(await tickets.redeem(ticket))) return refuse(c, 'unknown_ticket', STALE_LINK);
      // 303: the browser follows a POST's redirect with a GET.
      return beginAuthorization(c, c.req.path.replace(/\/continue$/, '/callback'), 303);
    },
  );

  routes.get('/callback', async (c) => {
    const q = c.req.query();
    const cookie = q.state ? getCookie(c, oauthCookieName(q.state)) : undefined;
    /** `detail`: what Dropbox said, for the operator's log (the page says it to the user). */
    const refuse = (reason: string, title: string, message: string, status: 400 | 502 | 503 = 400, detail?: string) => {
      // The user's own choice on Dropbox's page is no fault of anyone's; the app's key refused is the operator's to fix.
      log[reason === 'denied' ? 'info' : reason === 'app_credentials' ? 'error' : 'warn']({ reason, ...(detail ? { detail: redactSecrets(detail) } : {}) }, 'OAuth callback refused');
      return page(c, status, title, message);
    };
    if (!q.state) return refuse('missing_state', 'Link failed', `The callback has no state parameter. ${START_AGAIN}.`);
    const pending = await states.take(q.state);
    if (!pending) return refuse('unknown_state', 'Link failed', `This authorization is unknown, already used or expired (10 minutes). ${START_AGAIN}.`);
    if (!OAuthStateStore.sameBrowser(pending, cookie)) {
      return refuse('browser_mismatch', 'Link failed', `This browser did not start this authorization (its state cookie is missing or different). ${START_AGAIN}, opened in this browser.`);
    }
    deleteCookie(c, oauthCookieName(q.state), { path: new URL(pending.redirectUri).pathname });
    if (q.error) {
      const detail = q.error_description ? `${q.error}: ${q.error_description}` : q.error;
      return refuse('denied', 'Link cancelled', `Dropbox did not authorize the app (${detail}).`, 400, detail);
    }
    if (!q.code) return refuse('missing_code', 'Link failed', `The callback has no code parameter. ${START_AGAIN}.`);

    let grant;
    try {
      grant = await exchangeCode(settings, { code: q.code, redirectUri: pending.redirectUri, codeVerifier: pending.codeVerifier }, engine.clock.now());
    } catch (error) {
      if (!(error instanceof OAuthExchangeError)) throw error;
      if (error.kind === 'refused') return refuse('code_refused', 'Link failed', `Dropbox refused the authorization code (${error.message}): it expired or was already used. ${START_AGAIN}.`, 400, error.message);
      if (error.kind === 'app_credentials') {
        return refuse('app_credentials', 'Link failed', `Dropbox refused this server's app key (${error.message}): its operator must check DROPBOX_APP_KEY and DROPBOX_APP_SECRET. Starting again will not help until then.`, 503, error.message);
      }
      if (error.kind === 'unavailable') return refuse('dropbox_unavailable', 'Link failed', `${error.message}. In a moment: ${START_AGAIN}.`, 502, error.message);
      return refuse('invalid_answer', 'Link failed', error.message, 502, error.message);
    }
    const existing = await engine.accounts.get(grant.accountId);
    await engine.link(
      grant.accountId,
      { accessToken: grant.accessToken, refreshToken: grant.refreshToken, ...(grant.accessTokenExpiresAt ? { accessTokenExpiresAt: grant.accessTokenExpiresAt } : {}) },
      existing?.ignore ?? [],
    );
    log.info({ accountId: grant.accountId, relinked: Boolean(existing) }, 'account linked through OAuth; first sync started');
    return page(c, 200, 'Dropbox linked', `Account ${grant.accountId} is linked and its first sync has started. Its status: /accounts/${grant.accountId}`);
  });

  return routes;
}
