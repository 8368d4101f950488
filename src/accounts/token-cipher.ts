import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** The environment variable that holds the key; every error names it. */
export const TOKEN_KEY_VARIABLE = 'TOKEN_ENCRYPTION_KEY';

/** The text envelope's version prefix: `v1:<keyId>:<iv>:<tag>:<ciphertext>`, base64url parts. */
const TEXT_VERSION = 'v1';
/**
 * The first byte of a binary envelope. Not a character either other stored form starts with
 * (plaintext JSON starts with `{`, a text envelope with `v`), so one byte tells the three apart.
 */
const BINARY_VERSION = 0x01;
const KEY_ID_BYTES = 6;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const BINARY_HEADER_BYTES = 1 + KEY_ID_BYTES + IV_BYTES + TAG_BYTES;

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

/** The parts of an envelope, whichever form it was stored in. */
interface EnvelopeParts {
  keyId: Buffer;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

/**
 * AES-256-GCM for tokens at rest: a random 12-byte IV per value, the 16-byte tag, and a key id (a
 * hash of the key, not the key) so that a wrong key is reported as such instead of as a bare
 * authentication failure. The associated data (the account id) binds a value to its account:
 * copying it to another fails.
 *
 * Two forms of the same envelope. `seal` writes bytes: version byte 0x01, the 6-byte key id, iv,
 * tag, ciphertext; the credentials a Redis key holds on its own are stored so, because the base64url
 * text form is a third longer and for a production credential that length decided whether an idle
 * account fits in 1 KiB of Redis (docs/benchmarks.md, figure 7). `encrypt` writes the text form,
 * `v1:<keyId>:<iv>:<tag>:<ciphertext>`, for a value that lives inside text (the OAuth state's JSON);
 * credentials were stored so before. `decrypt` opens both, and `textEnvelopeToBytes` turns a text
 * envelope into the binary one without the key (same key id, iv, tag and ciphertext).
 */
export class TokenCipher {
  private readonly key: Buffer;
  /** The key id's bytes, as stored in a binary envelope. */
  private readonly keyIdBytes: Buffer;
  /** 8 characters identifying the key (safe to log): the base64url of the stored key id. */
  readonly keyId: string;

  constructor(key: Buffer | string) {
    this.key = typeof key === 'string' ? parseTokenKey(key) : Buffer.from(key);
    if (this.key.length !== KEY_BYTES) throw new InvalidTokenKeyError(`must be 32 bytes (got ${this.key.length})`);
    this.keyIdBytes = createHash('sha256').update('mailroom token key id\0').update(this.key).digest().subarray(0, KEY_ID_BYTES);
    this.keyId = this.keyIdBytes.toString('base64url');
  }

  /** Whether a stored value is an envelope (binary or text), as opposed to plaintext. */
  static isEnvelope(value: Buffer | string): boolean {
    if (typeof value === 'string') return value.startsWith(`${TEXT_VERSION}:`);
    return value[0] === BINARY_VERSION || value.subarray(0, TEXT_VERSION.length + 1).toString('latin1') === `${TEXT_VERSION}:`;
  }

  /**
   * The binary envelope holding the same sealed value as a text envelope, or null when the text is
   * not a well-formed one (it is then left as it is, for `decrypt` to report). Needs no key.
   */
  static textEnvelopeToBytes(text: string): Buffer | null {
    const parts = parseTextEnvelope(text);
    if (!parts) return null;
    return Buffer.concat([Buffer.of(BINARY_VERSION), parts.keyId, parts.iv, parts.tag, parts.ciphertext]);
  }

  /** The binary envelope of `plaintext`, bound to `associatedData`. */
  seal(plaintext: string, associatedData = ''): Buffer {
    const { iv, tag, ciphertext } = this.encryptParts(plaintext, associatedData);
    return Buffer.concat([Buffer.of(BINARY_VERSION), this.keyIdBytes, iv, tag, ciphertext]);
  }

  /** The text envelope of `plaintext`, bound to `associatedData`. */
  encrypt(plaintext: string, associatedData = ''): string {
    const { iv, tag, ciphertext } = this.encryptParts(plaintext, associatedData);
    return [TEXT_VERSION, this.keyId, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join(':');
  }

  private encryptParts(plaintext: string, associatedData: string): Omit<EnvelopeParts, 'keyId'> {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { iv, tag: cipher.getAuthTag(), ciphertext };
  }

  /** Opens a binary or a text envelope. `what` names the value in errors (e.g. "the credentials of account X"). */
  decrypt(envelope: Buffer | string, associatedData = '', what = 'the stored value'): string {
    const parts = typeof envelope === 'string' || envelope[0] !== BINARY_VERSION ? parseTextEnvelope(envelope.toString('utf8')) : parseBinaryEnvelope(envelope);
    if (!parts) throw new TokenDecryptError(`${what} is not a token envelope (neither the binary form nor ${TEXT_VERSION}:…): re-link the account`);
    if (!parts.keyId.equals(this.keyIdBytes)) {
      throw new TokenDecryptError(`${what} was encrypted with another key (key id ${parts.keyId.toString('base64url')}; ${TOKEN_KEY_VARIABLE} has key id ${this.keyId}): set the key it was written with, or re-link the account`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, parts.iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(associatedData, 'utf8'));
      decipher.setAuthTag(parts.tag);
      return Buffer.concat([decipher.update(parts.ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new TokenDecryptError(`${what} could not be decrypted with ${TOKEN_KEY_VARIABLE} (damaged, or copied from elsewhere): re-link the account`);
    }
  }
}

function parseBinaryEnvelope(bytes: Buffer): EnvelopeParts | null {
  if (bytes.length < BINARY_HEADER_BYTES || bytes[0] !== BINARY_VERSION) return null;
  let at = 1;
  const take = (n: number) => bytes.subarray(at, (at += n));
  return { keyId: take(KEY_ID_BYTES), iv: take(IV_BYTES), tag: take(TAG_BYTES), ciphertext: bytes.subarray(at) };
}

function parseTextEnvelope(text: string): EnvelopeParts | null {
  const parts = text.split(':');
  if (parts.length !== 5 || parts[0] !== TEXT_VERSION) return null;
  const [, keyId, iv, tag, ciphertext] = parts.map((part) => Buffer.from(part, 'base64url')) as [Buffer, Buffer, Buffer, Buffer, Buffer];
  if (keyId.length !== KEY_ID_BYTES || iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return null;
  return { keyId, iv, tag, ciphertext };
}
