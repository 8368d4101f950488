import { z } from 'zod';
import { accountKeys, LINKED_ACCOUNTS_KEY } from '../redis/keys.js';
import { runScript, type RedisClient } from '../redis/scripts.js';
import type { DropboxCredentials } from '../dropbox/dropbox-session.js';
import type { Logger } from '../logger.js';
import { TOKEN_KEY_VARIABLE, TokenCipher, TokenDecryptError } from './token-cipher.js';

export const credentialsSchema = z
  .object({
    accessToken: z.string().min(1).max(4096).optional(),
    refreshToken: z.string().min(1).max(4096).optional(),
  })
  .refine((c) => c.accessToken || c.refreshToken, { message: 'give accessToken or refreshToken' });

export interface LinkedAccount {
  accountId: string;
  /** Decrypted on first read: throws TokenDecryptError when TOKEN_ENCRYPTION_KEY cannot open them. */
  readonly credentials: DropboxCredentials;
  ignore: string[];
  linkedAt: number;
}

export interface AccountStoreOptions {
  /** Encrypts credentials at rest; without it they are stored as plaintext JSON (dev/demo only). */
  cipher?: TokenCipher;
  /** Receives the one-time plaintext warning. */
  log?: Logger;
}

/**
 * Linked accounts: credentials and settings, plus the global set of linked ids. Credentials are
 * written encrypted when a cipher is given (bound to the account id); plaintext values written
 * before a key was set stay readable and are encrypted on the next link.
 */
export class AccountStore {
  private warnedPlaintext = false;

  constructor(private readonly redis: RedisClient, private readonly options: AccountStoreOptions = {}) {}

  /** Links (or re-links) and asks for a sync; true when the actor must be woken. */
  async link(accountId: string, credentials: DropboxCredentials, ignore: string[], now: number): Promise<boolean> {
    const k = accountKeys(accountId);
    const wake = await runScript<number>(this.redis, 'accountLink', [k.account, k.mailbox, k.listing], [this.seal(accountId, credentials), now, JSON.stringify(ignore)]);
    await this.redis.sadd(LINKED_ACCOUNTS_KEY, accountId);
    return wake === 1;
  }

  /** Unlinks; false when it was not linked. Files, index and entries stay. */
  async unlink(accountId: string): Promise<boolean> {
    const k = accountKeys(accountId);
    const existed = await runScript<number>(this.redis, 'accountUnlink', [k.account, k.mailbox, k.actor, k.lease]);
    await this.redis.srem(LINKED_ACCOUNTS_KEY, accountId);
    return existed === 1;
  }

  async get(accountId: string): Promise<LinkedAccount | null> {
    return this.fromFields(accountId, await this.redis.hgetall(accountKeys(accountId).account));
  }

  /** The linked account these account-hash fields describe (read elsewhere, e.g. by the lease grant), or null when not linked. */
  fromFields(accountId: string, raw: Record<string, string>): LinkedAccount | null {
    if (!raw.credentials) return null;
    const stored = raw.credentials;
    let credentials: DropboxCredentials | undefined;
    const open = () => (credentials ??= this.open(accountId, stored));
    return {
      accountId,
      get credentials() {
        return open();
      },
      ignore: raw.ignore ? (JSON.parse(raw.ignore) as string[]) : [],
      linkedAt: Number(raw.linkedAt ?? 0),
    };
  }

  private seal(accountId: string, credentials: DropboxCredentials): string {
    const json = JSON.stringify(credentials);
    if (this.options.cipher) return this.options.cipher.encrypt(json, accountId);
    if (!this.warnedPlaintext) {
      this.warnedPlaintext = true;
      this.options.log?.warn(`${TOKEN_KEY_VARIABLE} is not set: Dropbox tokens are stored in Redis as plaintext (set it in production)`);
    }
    return json;
  }

  private open(accountId: string, stored: string): DropboxCredentials {
    if (!TokenCipher.isEnvelope(stored)) return JSON.parse(stored) as DropboxCredentials;
    const what = `the credentials of account ${accountId}`;
    if (!this.options.cipher) throw new TokenDecryptError(`${what} are encrypted but ${TOKEN_KEY_VARIABLE} is not set`);
    return JSON.parse(this.options.cipher.decrypt(stored, accountId, what)) as DropboxCredentials;
  }

  async linkedIds(): Promise<string[]> {
    return (await this.redis.smembers(LINKED_ACCOUNTS_KEY)).sort();
  }
}
