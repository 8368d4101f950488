import { randomBytes } from 'node:crypto';

export type TokenCheck = { ok: true; accountId: string } | { ok: false; reason: 'invalid_access_token' | 'expired_access_token' };

type AccessToken = { accountId: string; expiresAt: number; expired: boolean };

/** Short-lived access tokens and non-rotating refresh tokens, as Dropbox issues them. */
export class TokenRegistry {
  private readonly accessTokens = new Map<string, AccessToken>();
  private readonly refreshTokens = new Map<string, string>();

  constructor(private readonly accessTokenLifetimeSeconds: number) {}

  registerAccessToken(accountId: string, token: string): void {
    this.accessTokens.set(token, { accountId, expiresAt: Date.now() + this.accessTokenLifetimeSeconds * 1000, expired: false });
  }

  registerRefreshToken(accountId: string, token: string): void {
    this.refreshTokens.set(token, accountId);
  }

  check(token: string): TokenCheck {
    const entry = this.accessTokens.get(token);
    if (!entry) return { ok: false, reason: 'invalid_access_token' };
    if (entry.expired || Date.now() >= entry.expiresAt) return { ok: false, reason: 'expired_access_token' };
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
    for (const [token, entry] of this.accessTokens) if (entry.accountId === accountId) this.accessTokens.delete(token);
    for (const [token, owner] of this.refreshTokens) if (owner === accountId) this.refreshTokens.delete(token);
  }
}
