import { z } from 'zod';
import { accountKeys, LINKED_ACCOUNTS_KEY } from '../redis/keys.js';
import { runScript, type RedisClient } from '../redis/scripts.js';
import type { DropboxCredentials } from '../dropbox/dropbox-session.js';

export const credentialsSchema = z
  .object({
    accessToken: z.string().min(1).max(4096).optional(),
    refreshToken: z.string().min(1).max(4096).optional(),
  })
  .refine((c) => c.accessToken || c.refreshToken, { message: 'give accessToken or refreshToken' });

export interface LinkedAccount {
  accountId: string;
  credentials: DropboxCredentials;
  ignore: string[];
  linkedAt: number;
}

/** Linked accounts: credentials and settings, plus the global set of linked ids. */
export class AccountStore {
  constructor(private readonly redis: RedisClient) {}

  /** Links (or re-links) and asks for a sync; true when the actor must be woken. */
  async link(accountId: string, credentials: DropboxCredentials, ignore: string[], now: number): Promise<boolean> {
    const k = accountKeys(accountId);
    const wake = await runScript<number>(this.redis, 'accountLink', [k.account, k.mailbox, k.listing], [JSON.stringify(credentials), now, JSON.stringify(ignore)]);
    await this.redis.sadd(LINKED_ACCOUNTS_KEY, accountId);
    return wake === 1;
  }

  /** Unlinks; false when it was not linked. Files, index and entries stay. */
  async unlink(accountId: string): Promise<boolean> {
    const k = accountKeys(accountId);
    const existed = await runScript<number>(this.redis, 'accountUnlink', [k.account, k.mailbox, k.actor, k.fence, k.lease]);
    await this.redis.srem(LINKED_ACCOUNTS_KEY, accountId);
    return existed === 1;
  }

  async get(accountId: string): Promise<LinkedAccount | null> {
    const raw = await this.redis.hgetall(accountKeys(accountId).account);
    if (!raw.credentials) return null;
    return {
      accountId,
      credentials: JSON.parse(raw.credentials) as DropboxCredentials,
      ignore: raw.ignore ? (JSON.parse(raw.ignore) as string[]) : [],
      linkedAt: Number(raw.linkedAt ?? 0),
    };
  }

  async linkedIds(): Promise<string[]> {
    return (await this.redis.smembers(LINKED_ACCOUNTS_KEY)).sort();
  }
}
