import { accountKeys } from '../redis/keys.js';
import { runFencedScript, runScript, UNFENCED, type Fence, type FenceTokenOf, type RedisClient } from '../redis/scripts.js';

export type WebhookOutcome = 'unknown' | 'wake' | 'running';

export interface MailboxState {
  dirty: boolean;
  status: 'idle' | 'running';
  webhooks: number;
  /** When the last listing started (epoch ms), 0 if never. */
  listedAt: number;
}

/**
 * The per-account mailbox in Redis. Any number of webhooks collapse into one dirty flag; the
 * status says whether a run is going. Both transitions that matter are single scripts:
 * "mark dirty, wake if idle" (webhooks) and "again or idle" (the end of a run).
 */
export class Mailbox {
  constructor(private readonly redis: RedisClient, private readonly fenceOf: FenceTokenOf = UNFENCED) {}

  /** The account's fence key and the token this process writes with. */
  private fence(accountId: string): Fence {
    return { key: accountKeys(accountId).fence, token: this.fenceOf(accountId) };
  }

  /** One Redis round trip per account and webhook. */
  async markDirty(accountId: string): Promise<WebhookOutcome> {
    const k = accountKeys(accountId);
    const result = await runScript<number>(this.redis, 'mailboxMarkDirty', [k.credentials, k.mailbox]);
    return result === -1 ? 'unknown' : result === 1 ? 'wake' : 'running';
  }

  async requestResync(accountId: string): Promise<WebhookOutcome> {
    const k = accountKeys(accountId);
    const result = await runScript<number>(this.redis, 'accountResync', [k.credentials, k.mailbox]);
    return result === -1 ? 'unknown' : result === 1 ? 'wake' : 'running';
  }

  async finishRun(accountId: string): Promise<'again' | 'idle'> {
    const k = accountKeys(accountId);
    return (await runFencedScript<string>(
      this.redis,
      'runFinish',
      this.fence(accountId), [k.mailbox, k.queue, k.changes])) === 'again' ? 'again' : 'idle';
  }

  async read(accountId: string): Promise<MailboxState> {
    const raw = await this.redis.hgetall(accountKeys(accountId).mailbox);
    return { dirty: raw.dirty === '1', status: raw.status === 'running' ? 'running' : 'idle', webhooks: Number(raw.webhooks ?? 0), listedAt: Number(raw.listedAt ?? 0) };
  }
}
