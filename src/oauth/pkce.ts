import { createHash, randomBytes } from 'node:crypto';

/** A PKCE code verifier: 64 random bytes as 86 base64url characters (RFC 7636 allows 43-128). */
export function createCodeVerifier(): string {
  return randomBytes(64).toString('base64url');
}

/** The S256 challenge of a verifier: base64url(sha256(verifier)), unpadded. */
export function codeChallengeOf(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** An unguessable URL-safe value (state, browser nonce): 32 random bytes. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}
