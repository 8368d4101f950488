import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** The environment variable that holds the key; every error names it. */
export const TOKEN_KEY_VARIABLE = 'TOKEN_ENCRYPTION_KEY';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** A key that is not 32 bytes of base64, base64url or hex. The message never contains the value. */
export class InvalidTokenKeyError extends Error {
  constructor(readonly detail: string) {
    super(`${TOKEN_KEY_VARIABLE} ${detail}`);
    this.name = 'InvalidTokenKeyError';
  }
}

/** Stored credentials that cannot be decrypted: wrong key, no key, or a damaged value. */
export class TokenDecryptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenDecryptError';
  }
}

/**
 * Parses a 32-byte key given as hex (64 characters) or base64 / base64url (43-44 characters).
 * Generate one with `openssl rand -base64 32`.
 */
export function parseTokenKey(raw: string): Buffer {
  const value = raw.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(value)) key = Buffer.from(value, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(value)) key = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (!key || key.length !== KEY_BYTES) {
    throw new InvalidTokenKeyError(
      `must be 32 random bytes as 64 hex characters or 44 base64 characters (got ${value.length} characters); generate one with: openssl rand -base64 32`,
    );
  }
  return key;
}

/**
 * AES-256-GCM for tokens at rest. An envelope is `v1:<keyId>:<iv>:<tag>:<ciphertext>` (base64url
 * parts): a random 12-byte IV per value, the 16-byte tag, and a key id (a hash of the key, not the
 * key) so that a wrong key is reported as such instead of as a bare authentication failure. The
 * associated data (the account id) binds a value to its account: copying it to another fails.
 */
export class TokenCipher {
  private readonly key: Buffer;
  /** 8 characters identifying the key (safe to log). */
  readonly keyId: string;

  constructor(key: Buffer | string) {
    this.key = typeof key === 'string' ? parseTokenKey(key) : Buffer.from(key);
    if (this.key.length !== KEY_BYTES) throw new InvalidTokenKeyError(`must be 32 bytes (got ${this.key.length})`);
    this.keyId = createHash('sha256').update('mailroom token key id\0').update(this.key).digest('base64url').slice(0, 8);
  }

  static isEnvelope(value: string): boolean {
    return value.startsWith(`${VERSION}:`);
  }

  encrypt(plaintext: string, associatedData = ''): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, this.keyId, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join(':');
  }

  /** `what` names the value in errors (e.g. "the credentials of account X"). */
  decrypt(envelope: string, associatedData = '', what = 'the stored value'): string {
    const parts = envelope.split(':');
    if (parts.length !== 5 || parts[0] !== VERSION) throw new TokenDecryptError(`${what} is not a ${VERSION} token envelope`);
    const [, keyId, iv, tag, ciphertext] = parts as [string, string, string, string, string];
    if (keyId !== this.keyId) {
      throw new TokenDecryptError(`${what} was encrypted with another key (key id ${keyId}; ${TOKEN_KEY_VARIABLE} has key id ${this.keyId}): set the key it was written with, or re-link the account`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(associatedData, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new TokenDecryptError(`${what} could not be decrypted with ${TOKEN_KEY_VARIABLE} (damaged, or copied from elsewhere): re-link the account`);
    }
  }
}
