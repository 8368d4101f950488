import type { DropboxAppSettings } from '../dropbox/dropbox-session.js';

export const DEFAULT_AUTHORIZE_URL = 'https://www.dropbox.com/oauth2/authorize';

/**
 * Where the browser signs in: `authorizeUrl` when set (DROPBOX_AUTHORIZE_URL), else the emulator's
 * page when the API host is an emulator, else Dropbox's.
 */
export function authorizeEndpoint(app: Pick<DropboxAppSettings, 'authorizeUrl' | 'hosts'>): string {
  if (app.authorizeUrl) return app.authorizeUrl;
  if (app.hosts.api) return `${app.hosts.api.replace(/\/+$/, '')}/oauth2/authorize`;
  return DEFAULT_AUTHORIZE_URL;
}

/**
 * The documented authorize URL of the code flow with offline access and PKCE (S256). Built here
 * rather than with the SDK's `getAuthenticationUrl`: that one always targets https://dropbox.com (or
 * `https://meta-<domain>`), so it cannot reach an emulator, and it does not URL-encode
 * `redirect_uri` or `state`.
 */
export function buildAuthorizeUrl(options: { endpoint: string; clientId: string; redirectUri: string; state: string; codeChallenge: string }): string {
  const url = new URL(options.endpoint);
  url.searchParams.set('client_id', options.clientId);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('redirect_uri', options.redirectUri);
  url.searchParams.set('state', options.state);
  url.searchParams.set('code_challenge', options.codeChallenge);
  url.searchParams.set('code_challenge_method', 'S256');
  url.searchParams.set('token_access_type', 'offline');
  return url.href;
}
