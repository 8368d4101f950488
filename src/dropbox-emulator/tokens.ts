import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A refused token names its account when the registry knows it (expired, or revoked): for the emulator's accounting only. */
export type TokenCheck = { ok: true; accountId: string } | { ok: false; reason: 'invalid_access_token' | 'expired_access_token'; accountId?: string };

type AccessToken = { accountId: string; expiresAt: number; expired: boolean };

/** What the (auto-approving) authorize page does with the next request. */
export type AuthorizationDecision = { approve: string } | { deny: true };

type AuthorizationCode = {
  accountId: string;
  clientId: string;
  redirectUri: string | undefined;
  codeChallenge: string | undefined;
  offline: boolean;
  expiresAt: number;
};

export type CodeGrant = {
  accountId: string;
  accessToken: string;
  expiresIn: number;
  refreshToken: string | undefined;
};

export type CodeRefusal = { error: 'invalid_grant' | 'invalid_request'; description: string };

export type CodeRedemption = {
  code: string;
  clientId: string;
  redirectUri: string | undefined;
  codeVerifier: string | undefined;
  /** A correct client_secret came with the request (the non-PKCE way to prove who is asking). */
  clientAuthenticated: boolean;
};

/** The PKCE S256 challenge of a verifier: base64url(sha256(verifier)), unpadded. */
export function pkceChallenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Short-lived access tokens and non-rotating refresh tokens, as Dropbox issues them. */
export class TokenRegistry {
  private readonly accessTokens = new Map<string, AccessToken>();
  /** Revoked access tokens, by the account they were issued to: still refused, but counted for it. */
  private readonly revokedAccessTokens = new Map<string, string>();
  private readonly refreshTokens = new Map<string, string>();
  private readonly codes = new Map<string, AuthorizationCode>();
  private readonly decisions: AuthorizationDecision[] = [];
  /** Authorization codes are single-use and expire after this long (Dropbox: minutes). */
  codeLifetimeMs = 10 * 60_000;

  constructor(private readonly accessTokenLifetimeSeconds: number) {}

  /** The next /oauth2/authorize request is approved as if `accountId`'s user had clicked "Allow". */
  approveNextAuthorization(accountId: string): void {
    this.decisions.push({ approve: accountId });
  }

  /** The next /oauth2/authorize request is denied as if the user had clicked "Cancel". */
  denyNextAuthorization(): void {
    this.decisions.push({ deny: true });
  }

  /** The queued decision for an authorize request, if a test queued one. */
  takeAuthorizationDecision(): AuthorizationDecision | undefined {
    return this.decisions.shift();
  }

  /** A single-use authorization code for an approved authorize request. */
  issueCode(grant: Omit<AuthorizationCode, 'expiresAt'>): string {
    const code = randomBytes(24).toString('base64url');
    this.codes.set(code, { ...grant, expiresAt: Date.now() + this.codeLifetimeMs });
    return code;
  }

  /**
   * Exchanges a code once: the client, the redirect URI of the authorize request, and the PKCE
   * verifier (or, without a challenge, an authenticated client) must all match. A failed attempt
   * burns the code too, as a stolen code must not be retried.
   */
  redeemCode(request: CodeRedemption): CodeGrant | CodeRefusal {
    const entry = this.codes.get(request.code);
    this.codes.delete(request.code);
    if (!entry || Date.now() >= entry.expiresAt) return { error: 'invalid_grant', description: 'code doesn\'t exist or has expired' };
    if (entry.clientId !== request.clientId) return { error: 'invalid_grant', description: 'code was issued to another client' };
    if (entry.redirectUri !== undefined && entry.redirectUri !== request.redirectUri) return { error: 'invalid_grant', description: 'redirect_uri mismatch' };
    if (entry.codeChallenge !== undefined) {
      if (!request.codeVerifier) return { error: 'invalid_request', description: 'code_verifier is required for a PKCE code' };
      if (!sameString(pkceChallenge(request.codeVerifier), entry.codeChallenge)) return { error: 'invalid_grant', description: 'invalid code verifier' };
    } else if (!request.clientAuthenticated) {
      return { error: 'invalid_request', description: 'client_secret is required (no code_challenge was sent to /oauth2/authorize)' };
    }
    const accessToken = 'sl.' + randomBytes(24).toString('base64url');
    this.registerAccessToken(entry.accountId, accessToken);
    let refreshToken: string | undefined;
    if (entry.offline) {
      refreshToken = randomBytes(32).toString('base64url');
      this.registerRefreshToken(entry.accountId, refreshToken);
    }
    return { accountId: entry.accountId, accessToken, expiresIn: this.accessTokenLifetimeSeconds, refreshToken };
  }

  registerAccessToken(accountId: string, token: string): void {
    this.accessTokens.set(token, { accountId, expiresAt: Date.now() + this.accessTokenLifetimeSeconds * 1000, expired: false });
  }

  registerRefreshToken(accountId: string, token: string): void {
    this.refreshTokens.set(token, accountId);
  }

  check(token: string): TokenCheck {
    const entry = this.accessTokens.get(token);
    if (!entry) {
      const revokedFrom = this.revokedAccessTokens.get(token);
      return { ok: false, reason: 'invalid_access_token', ...(revokedFrom === undefined ? {} : { accountId: revokedFrom }) };
    }
    if (entry.expired || Date.now() >= entry.expiresAt) return { ok: false, reason: 'expired_access_token', accountId: entry.accountId };
    return { ok: true, accountId: entry.accountId };
  }

  /** A new access token for a known refresh token; the refresh token itself does not rotate. */
  refresh(refreshToken: string): { accountId: string; accessToken: string; expiresIn: number } | undefined {
    const accountId = this.refreshTokens.get(refreshToken);
    if (accountId === undefined) return undefined;
    const accessToken = 'sl.' + randomBytes(24).toString('base64url');
    this.registerAccessToken(accountId, accessToken);
    return { accountId, accessToken, expiresIn: this.accessTokenLifetimeSeconds };
  }

  /** Every access token the account holds now answers 401 expired_access_token; refresh tokens keep working. */
  expireAccessTokens(accountId: string): void {
    for (const entry of this.accessTokens.values()) if (entry.accountId === accountId) entry.expired = true;
  }

  revokeAccount(accountId: string): void {
    for (const [token, entry] of this.accessTokens) {
      if (entry.accountId !== accountId) continue;
      this.accessTokens.delete(token);
      this.revokedAccessTokens.set(token, accountId);
    }
    for (const [token, owner] of this.refreshTokens) if (owner === accountId) this.refreshTokens.delete(token);
  }
}
