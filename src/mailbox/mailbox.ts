import { accountKeys } from '../redis/keys.js';
import { runScript, type RedisClient } from '../redis/scripts.js';

export type WebhookOutcome = 'unknown' | 'wake' | 'running';

export interface MailboxState {
  dirty: boolean;
  status: 'idle' | 'running';
  webhooks: number;
}

/**
 * The per-account mailbox in Redis. Any number of webhooks collapse into one dirty flag; the
 * status says whether a run is going. Both transitions that matter are single scripts:
 * "mark dirty, wake if idle" (webhooks) and "again or idle" (the end of a run).
 */
export class Mailbox {
  constructor(private readonly redis: RedisClient) {}

  /** One Redis round trip per account and webhook. */
  async markDirty(accountId: string): Promise<WebhookOutcome> {
    const k = accountKeys(accountId);
    const result = await runScript<number>(this.redis, 'mailboxMarkDirty', [k.account, k.mailbox]);
    return result === -1 ? 'unknown' : result === 1 ? 'wake' : 'running';
  }

  async requestResync(accountId: string): Promise<WebhookOutcome> {
    const k = accountKeys(accountId);
    const result = await runScript<number>(this.redis, 'accountResync', [k.account, k.mailbox, k.listing]);
    return result === -1 ? 'unknown' : result === 1 ? 'wake' : 'running';
  }

  async finishRun(accountId: string): Promise<'again' | 'idle'> {
    const k = accountKeys(accountId);
    return (await runScript<string>(this.redis, 'runFinish', [k.mailbox, k.queue, k.changes])) === 'again' ? 'again' : 'idle';
  }

  async read(accountId: string): Promise<MailboxState> {
    const raw = await this.redis.hgetall(accountKeys(accountId).mailbox);
    return { dirty: raw.dirty === '1', status: raw.status === 'running' ? 'running' : 'idle', webhooks: Number(raw.webhooks ?? 0) };
  }
}
