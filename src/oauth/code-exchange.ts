import { DropboxAuth } from 'dropbox';
import { z } from 'zod';
import { isAppRejected } from '../dropbox/call-dropbox.js';
import type { DropboxAppSettings } from '../dropbox/dropbox-session.js';
import { createDropboxFetch } from '../dropbox/origin-rewrite.js';
import { isValidAccountId } from '../redis/keys.js';

/** What a code exchange yields: the account and its tokens (secrets: never log this object). */
export interface OAuthGrant {
  accountId: string;
  accessToken: string;
  refreshToken: string;
  /** Epoch ms. */
  accessTokenExpiresAt: number | undefined;
}

/**
 * `refused`: Dropbox said no to this code (bad, used or expired code; wrong verifier).
 * `app_credentials`: Dropbox refused the app itself (its key): no code will do until the server's
 * settings are fixed. `unavailable`: try again. `invalid`: an answer we cannot use.
 */
export class OAuthExchangeError extends Error {
  constructor(readonly kind: 'refused' | 'app_credentials' | 'unavailable' | 'invalid', message: string) {
    super(message);
    this.name = 'OAuthExchangeError';
  }
}

const tokenResponse = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  expires_in: z.number().positive().optional(),
  account_id: z.string().min(1),
});

/**
 * Exchanges an authorization code through the SDK's `getAccessTokenFromCode`, with the rewriting
 * fetch (so an emulator works too). The SDK sends `code_verifier` only when it has no client secret,
 * so the exchange uses the app key and the PKCE verifier (Dropbox's PKCE grant); it also pastes its
 * arguments into the query unencoded, hence the encodeURIComponent here.
 */
export async function exchangeCode(
  app: DropboxAppSettings,
  request: { code: string; redirectUri: string; codeVerifier: string },
  now: number,
): Promise<OAuthGrant> {
  if (!app.appKey) throw new OAuthExchangeError('invalid', 'DROPBOX_APP_KEY is not set');
  const auth = new DropboxAuth({ clientId: app.appKey, fetch: createDropboxFetch(app.hosts, { timeoutMs: app.callTimeoutMs }) });
  auth.setCodeVerifier(request.codeVerifier);
  let result: unknown;
  try {
    result = (await auth.getAccessTokenFromCode(encodeURIComponent(request.redirectUri), encodeURIComponent(request.code))).result;
  } catch (error) {
    const e = error as { status?: unknown; error?: unknown; message?: string };
    if (typeof e.status === 'number') {
      const body = (e.error && typeof e.error === 'object' ? e.error : {}) as { error?: unknown; error_description?: unknown };
      const reason = [body.error, body.error_description].filter((v) => typeof v === 'string').join(': ') || `HTTP ${e.status}`;
      if (e.status === 400 || e.status === 401) {
        // invalid_client may come with a 401 as well as a 400 (RFC 6749 §5.2).
        throw new OAuthExchangeError(isAppRejected(body) ? 'app_credentials' : 'refused', reason);
      }
      throw new OAuthExchangeError('unavailable', `Dropbox answered ${reason}`);
    }
    throw new OAuthExchangeError('unavailable', `Dropbox could not be reached (${(error as Error).name ?? "error"})`);
  }
  const parsed = tokenResponse.safeParse(result);
  if (!parsed.success) throw new OAuthExchangeError('invalid', 'Dropbox answered the code exchange without an access token or account id');
  const { access_token, refresh_token, expires_in, account_id } = parsed.data;
  if (!refresh_token) throw new OAuthExchangeError('invalid', 'Dropbox returned no refresh token (token_access_type=offline was not honoured)');
  if (!isValidAccountId(account_id)) throw new OAuthExchangeError('invalid', 'Dropbox returned an account id this engine cannot store');
  return {
    accountId: account_id,
    accessToken: access_token,
    refreshToken: refresh_token,
    accessTokenExpiresAt: expires_in !== undefined ? now + expires_in * 1000 : undefined,
  };
}
