import { createHash, timingSafeEqual } from 'node:crypto';
import type { TokenCipher } from '../accounts/token-cipher.js';
import type { RedisClient } from '../redis/scripts.js';

/** An authorization in progress: started by `/oauth/start`, finished (once) by `/oauth/callback`. */
export interface PendingAuthorization {
  /** Hash of the nonce in the starting browser's cookie (the nonce itself is not stored). */
  browser: string;
  codeVerifier: string;
  redirectUri: string;
  createdAt: number;
}

const STATE = /^[A-Za-z0-9_-]{43}$/;
export const STATE_TTL_SECONDS = 600;

const stateKey = (state: string) => `mr:oauth:state:${state}`;
const hashNonce = (nonce: string) => createHash('sha256').update(nonce).digest('base64url');

/**
 * `state` -> the PKCE verifier and the browser binding, in Redis with a short TTL so any process can
 * answer the callback. The verifier is encrypted when a token cipher is configured.
 */
export class OAuthStateStore {
  constructor(private readonly redis: RedisClient, private readonly cipher: TokenCipher | undefined) {}

  async put(state: string, pending: { browserNonce: string; codeVerifier: string; redirectUri: string; createdAt: number }): Promise<void> {
    const verifier = this.cipher ? this.cipher.encrypt(pending.codeVerifier, `oauth-state:${state}`) : pending.codeVerifier;
    const value: PendingAuthorization = { browser: hashNonce(pending.browserNonce), codeVerifier: verifier, redirectUri: pending.redirectUri, createdAt: pending.createdAt };
    await this.redis.set(stateKey(state), JSON.stringify(value), 'EX', STATE_TTL_SECONDS);
  }

  /** Takes (deletes) the authorization of `state`; undefined when unknown, used or expired. */
  async take(state: string): Promise<PendingAuthorization | undefined> {
    if (!STATE.test(state)) return undefined;
    const raw = await this.redis.getdel(stateKey(state));
    if (!raw) return undefined;
    const pending = JSON.parse(raw) as PendingAuthorization;
    if (this.cipher) pending.codeVerifier = this.cipher.decrypt(pending.codeVerifier, `oauth-state:${state}`, 'the OAuth state');
    return pending;
  }

  /** True when `nonce` (from the callback's cookie) is the one the authorization was started with. */
  static sameBrowser(pending: PendingAuthorization, nonce: string | undefined): boolean {
    if (!nonce) return false;
    const a = Buffer.from(hashNonce(nonce));
    const b = Buffer.from(pending.browser);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}
