import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStore } from '../../src/accounts/account-store.js';
import { InvalidTokenKeyError, parseTokenKey, TokenCipher, TokenDecryptError } from '../../src/accounts/token-cipher.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { accountKeys } from '../../src/redis/keys.js';
import { startTestRedisClient } from '../support/redis-server.js';

describe('TokenCipher', () => {
  const key = randomBytes(32);
  const cipher = new TokenCipher(key);

  it('round-trips through a versioned AES-GCM envelope with a fresh IV each time', () => {
    const a = cipher.encrypt('{"refreshToken":"secret"}', 'dbid:a');
    const b = cipher.encrypt('{"refreshToken":"secret"}', 'dbid:a');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^v1:[A-Za-z0-9_-]{8}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]+$/);
    expect(a).not.toContain('secret');
    expect(cipher.decrypt(a, 'dbid:a')).toBe('{"refreshToken":"secret"}');
    expect(TokenCipher.isEnvelope(a)).toBe(true);
    expect(TokenCipher.isEnvelope('{"accessToken":"x"}')).toBe(false);
  });

  it('seals to bytes: version byte, key id, iv, tag, ciphertext, and opens them', () => {
    const sealed = cipher.seal('{"refreshToken":"secret"}', 'dbid:a');
    expect(sealed[0]).toBe(0x01);
    expect(sealed.subarray(1, 7).toString('base64url')).toBe(cipher.keyId);
    expect(sealed.length).toBe(1 + 6 + 12 + 16 + '{"refreshToken":"secret"}'.length);
    expect(sealed.toString('latin1')).not.toContain('secret');
    expect(cipher.seal('{"refreshToken":"secret"}', 'dbid:a').equals(sealed)).toBe(false); // a fresh IV
    expect(cipher.decrypt(sealed, 'dbid:a')).toBe('{"refreshToken":"secret"}');
    expect(TokenCipher.isEnvelope(sealed)).toBe(true);
    expect(TokenCipher.isEnvelope(Buffer.from('{"accessToken":"x"}'))).toBe(false);
    expect(TokenCipher.isEnvelope(Buffer.from(cipher.encrypt('x', 'dbid:a')))).toBe(true);
  });

  it('turns a text envelope into the binary one without the key, and leaves a damaged one alone', () => {
    const text = cipher.encrypt('{"refreshToken":"secret"}', 'dbid:a');
    const bytes = TokenCipher.textEnvelopeToBytes(text)!;
    expect(bytes[0]).toBe(0x01);
    expect(bytes.length).toBe(1 + 6 + 12 + 16 + '{"refreshToken":"secret"}'.length);
    expect(cipher.decrypt(bytes, 'dbid:a')).toBe('{"refreshToken":"secret"}');
    expect(cipher.decrypt(Buffer.from(text), 'dbid:a')).toBe('{"refreshToken":"secret"}'); // a text envelope read as bytes
    expect(TokenCipher.textEnvelopeToBytes('{"refreshToken":"plain"}')).toBeNull();
    expect(TokenCipher.textEnvelopeToBytes('v1:short:x:y:z')).toBeNull();
  });

  it('refuses a tampered value, another account\'s value, and another key, each with a clear message', () => {
    const sealed = cipher.encrypt('hello', 'dbid:a');
    const parts = sealed.split(':');
    const ct = Buffer.from(parts[4]!, 'base64url');
    ct[0] = ct[0]! ^ 1;
    parts[4] = ct.toString('base64url');
    expect(() => cipher.decrypt(parts.join(':'), 'dbid:a')).toThrow(TokenDecryptError);
    expect(() => cipher.decrypt(sealed, 'dbid:b')).toThrow(/could not be decrypted with TOKEN_ENCRYPTION_KEY/);
    const other = new TokenCipher(randomBytes(32));
    expect(() => other.decrypt(sealed, 'dbid:a', 'the credentials of account dbid:a')).toThrow(
      new RegExp(`the credentials of account dbid:a was encrypted with another key \\(key id ${cipher.keyId}; TOKEN_ENCRYPTION_KEY has key id ${other.keyId}\\)`),
    );
    expect(() => cipher.decrypt('v2:whatever', 'dbid:a')).toThrow(/not a token envelope/);

    // The same three refusals for the binary form.
    const bytes = cipher.seal('hello', 'dbid:a');
    const tampered = Buffer.from(bytes);
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    expect(() => cipher.decrypt(tampered, 'dbid:a')).toThrow(/could not be decrypted with TOKEN_ENCRYPTION_KEY/);
    expect(() => cipher.decrypt(bytes, 'dbid:b')).toThrow(/could not be decrypted with TOKEN_ENCRYPTION_KEY/);
    expect(() => other.decrypt(bytes, 'dbid:a', 'the credentials of account dbid:a')).toThrow(
      new RegExp(`the credentials of account dbid:a was encrypted with another key \\(key id ${cipher.keyId}; TOKEN_ENCRYPTION_KEY has key id ${other.keyId}\\)`),
    );
    expect(() => cipher.decrypt(bytes.subarray(0, 20), 'dbid:a')).toThrow(/not a token envelope/);
  });

  it('reads a key as hex, base64 or base64url, and refuses anything else without echoing it', () => {
    expect(parseTokenKey(key.toString('hex')).equals(key)).toBe(true);
    expect(parseTokenKey(key.toString('base64')).equals(key)).toBe(true);
    expect(parseTokenKey(key.toString('base64url')).equals(key)).toBe(true);
    for (const bad of ['short', randomBytes(16).toString('base64'), randomBytes(31).toString('hex'), 'x'.repeat(44)]) {
      let error: unknown;
      try {
        parseTokenKey(bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidTokenKeyError);
      expect((error as Error).message).toMatch(/^TOKEN_ENCRYPTION_KEY must be 32 random bytes/);
      expect((error as Error).message).not.toContain(bad);
    }
  });
});

describe('configuration', () => {
  const base = { DROPBOX_APP_SECRET: 's' };

  it('production mode without a key is a start-up error naming the variable', () => {
    for (const env of [{ MAILROOM_ENV: 'production' }, { NODE_ENV: 'production' }]) {
      expect(() => loadConfig({ ...base, ...env })).toThrow(ConfigError);
      expect(() => loadConfig({ ...base, ...env })).toThrow(/^invalid configuration: TOKEN_ENCRYPTION_KEY is required in production mode/);
    }
    expect(loadConfig({ ...base, NODE_ENV: 'production', MAILROOM_ENV: 'development' }).production).toBe(false);
    expect(loadConfig({ ...base }).tokenEncryptionKey).toBeUndefined();
  });

  it('production mode without ADMIN_TOKEN is a start-up error: a generated one would be printed into the logs', () => {
    const key = randomBytes(32).toString('base64');
    expect(() => loadConfig({ ...base, MAILROOM_ENV: 'production', TOKEN_ENCRYPTION_KEY: key })).toThrow(/^invalid configuration: ADMIN_TOKEN is required in production mode/);
    expect(loadConfig({ ...base, MAILROOM_ENV: 'production', TOKEN_ENCRYPTION_KEY: key, ADMIN_TOKEN: 'an-admin-token-of-some-length' }).adminToken).toBe('an-admin-token-of-some-length');
    expect(loadConfig({ ...base }).adminToken).toBeUndefined(); // elsewhere one is generated and printed
  });

  it('a bad key is a start-up error that does not print the key; a good one is read', () => {
    const bad = 'not-a-key-but-a-secret-anyway';
    let error: unknown;
    try {
      loadConfig({ ...base, TOKEN_ENCRYPTION_KEY: bad });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('TOKEN_ENCRYPTION_KEY');
    expect((error as Error).message).not.toContain(bad);
    const key = randomBytes(32);
    const config = loadConfig({ ...base, MAILROOM_ENV: 'production', ADMIN_TOKEN: 'an-admin-token-of-some-length', TOKEN_ENCRYPTION_KEY: key.toString('base64'), DROPBOX_AUTHORIZE_URL: 'https://example.test/oauth2/authorize', OAUTH_REDIRECT_URL: 'https://mailroom.example/oauth/callback' });
    expect(config.production).toBe(true);
    expect(config.tokenEncryptionKey?.equals(key)).toBe(true);
    expect(config.dropboxAuthorizeUrl).toBe('https://example.test/oauth2/authorize');
    expect(config.oauthRedirectUrl).toBe('https://mailroom.example/oauth/callback');
  });
});

describe('AccountStore with and without a key', () => {
  let redis: Redis;
  let stopRedis: () => Promise<void>;
  beforeAll(async () => {
    ({ redis, stop: stopRedis } = await startTestRedisClient());
  });
  afterAll(() => stopRedis());

  /** The credentials' bytes as Redis holds them. */
  const storedCredentials = (account: string) => redis.getBuffer(accountKeys(account).credentials);

  it('plaintext credentials written before a key was set stay readable and are encrypted on the next link', async () => {
    const account = 'dbid:migrate';
    const warnings: string[] = [];
    const log = { warn: (msg: string) => warnings.push(msg) } as unknown as import('../../src/logger.js').Logger;
    const plain = new AccountStore(redis, { log });
    await plain.link(account, { refreshToken: 'refresh-plain' }, [], Date.now());
    await plain.link('dbid:migrate-2', { refreshToken: 'refresh-plain-2' }, [], Date.now());
    expect(warnings).toHaveLength(1); // once
    expect(warnings[0]).toMatch(/TOKEN_ENCRYPTION_KEY is not set/);
    expect((await storedCredentials(account))!.toString()).toBe('{"refreshToken":"refresh-plain"}');

    const encrypted = new AccountStore(redis, { cipher: new TokenCipher(randomBytes(32)) });
    expect((await encrypted.get(account))!.credentials).toEqual({ refreshToken: 'refresh-plain' });
    await encrypted.link(account, { refreshToken: 'refresh-plain' }, [], Date.now());
    const raw = (await storedCredentials(account))!;
    expect(raw[0]).toBe(0x01);
    expect(raw.toString('latin1')).not.toContain('refresh-plain');
    expect((await encrypted.get(account))!.credentials).toEqual({ refreshToken: 'refresh-plain' });
  });

  it('seals credentials as bytes, packed small, and reads them back whole', async () => {
    const cipher = new TokenCipher(randomBytes(32));
    const store = new AccountStore(redis, { cipher });
    const account = 'dbid:sealed';
    const credentials = { accessToken: `sl.${'a'.repeat(147)}`, refreshToken: 'r'.repeat(64), accessTokenExpiresAt: 1_800_000_000_000 };
    await store.link(account, credentials, ['/drafts/**'], 1_700_000_000_000);
    const raw = (await storedCredentials(account))!;
    // [accessToken, refreshToken, expiry]: no field names sealed with them.
    expect(cipher.decrypt(raw, account)).toBe(JSON.stringify([credentials.accessToken, credentials.refreshToken, credentials.accessTokenExpiresAt]));
    expect(raw.length).toBe(1 + 6 + 12 + 16 + JSON.stringify([credentials.accessToken, credentials.refreshToken, credentials.accessTokenExpiresAt]).length);
    const read = (await store.get(account))!;
    expect(read.credentials).toEqual(credentials);
    expect(read).toMatchObject({ ignore: ['/drafts/**'], linkedAt: 1_700_000_000_000 });
    await store.link(account, { refreshToken: 'only-refresh' }, [], Date.now());
    expect(cipher.decrypt((await storedCredentials(account))!, account)).toBe('[null,"only-refresh"]');
    expect((await store.get(account))!.credentials).toEqual({ refreshToken: 'only-refresh' });
  });

  it('reads credentials an older version sealed as a text envelope of their JSON', async () => {
    const cipher = new TokenCipher(randomBytes(32));
    const account = 'dbid:text-envelope';
    await redis.set(accountKeys(account).credentials, cipher.encrypt('{"accessToken":"old-access","refreshToken":"old-refresh"}', account));
    expect((await new AccountStore(redis, { cipher }).get(account))!.credentials).toEqual({ accessToken: 'old-access', refreshToken: 'old-refresh' });
    const wrongKey = (await new AccountStore(redis, { cipher: new TokenCipher(randomBytes(32)) }).get(account))!;
    expect(() => wrongKey.credentials).toThrow(new RegExp(`encrypted with another key \\(key id ${cipher.keyId};`));
    await expect(new AccountStore(redis).get(account).then((a) => a!.credentials)).rejects.toThrow(/encrypted but TOKEN_ENCRYPTION_KEY is not set/);
  });
});
