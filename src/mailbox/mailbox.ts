import { accountKeys } from '../redis/keys.js';
import { runFencedScript, runScript, UNFENCED, type Fence, type FenceTokenOf, type RedisClient } from '../redis/scripts.js';

/** `parked`: recorded, but the account waits for a re-link (its credentials were refused), so nothing runs. */
export type WebhookOutcome = 'unknown' | 'wake' | 'running' | 'parked';

export interface MailboxState {
  dirty: boolean;
  /** `parked`: the actor awaits a re-link (set with its snapshot, actor-save.lua); no run goes until then. */
  status: 'idle' | 'running' | 'parked';
  webhooks: number;
  /** When the last listing started (epoch ms), 0 if never; for a parked account, its last try. */
  listedAt: number;
  /** The sweep's re-checks of the account's current wait for a re-link (parked-recheck.lua). */
  rechecks: number;
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
    return result === -1 ? 'unknown' : result === 1 ? 'wake' : result === 2 ? 'parked' : 'running';
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

  /**
   * The sweep's re-check of a parked account (parked-recheck.lua): true when it was due and is now
   * marked running, stamped; the caller then wakes it.
   */
  async takeParkedRecheck(accountId: string, now: number, baseMs: number, longestMs: number): Promise<boolean> {
    return (await runScript<number>(this.redis, 'parkedRecheck', [accountKeys(accountId).mailbox], [String(now), String(baseMs), String(longestMs)])) === 1;
  }

  /**
   * The fields of MailboxState, not the whole hash: the mailbox also holds the idle actor, the
   * fence and the link's fields, and the sweep reads every linked account's mailbox every
   * SWEEP_INTERVAL_MS (at 100,000 accounts HGETALL moved 32.8 MB per sweep and decoding it kept
   * the event loop busy 6.2 s of every 10).
   */
  async read(accountId: string): Promise<MailboxState> {
    return mailboxStateOf(await this.redis.hmget(accountKeys(accountId).mailbox, ...MAILBOX_STATE_FIELDS));
  }
}

/** The mailbox fields MailboxState is read from, in the order mailboxStateOf takes them. */
export const MAILBOX_STATE_FIELDS = ['dirty', 'status', 'webhooks', 'listedAt', 'rechecks'] as const;

/** MailboxState from the values of MAILBOX_STATE_FIELDS, in that order (null: absent). */
export function mailboxStateOf([dirty, status, webhooks, listedAt, rechecks]: readonly (string | null | undefined)[]): MailboxState {
  return { dirty: dirty === '1', status: status === 'running' || status === 'parked' ? status : 'idle', webhooks: Number(webhooks ?? 0), listedAt: Number(listedAt ?? 0), rechecks: Number(rechecks ?? 0) };
}

/**
 * Whether a parked account's next re-check is due: its last try is older than the base interval
 * doubled once per re-check of this wait, up to `longestMs`. parked-recheck.lua decides with the
 * same rule in the step that takes the re-check; the sweep asks this first, so that a long wait
 * costs no script per sweep.
 */
export function parkedRecheckDue(box: Pick<MailboxState, 'listedAt' | 'rechecks'>, now: number, baseMs: number, longestMs: number): boolean {
  return now - box.listedAt >= Math.min(baseMs * 2 ** box.rechecks, longestMs);
}

/**
 * Whether the mailbox asks for a run: one is going (its owner may have died), or a webhook came in.
 * A parked account's dirty flag waits for the re-link that unparks it.
 */
export function hasWork(box: Pick<MailboxState, 'status' | 'dirty'>): boolean {
  return box.status === 'running' || (box.dirty && box.status !== 'parked');
}
