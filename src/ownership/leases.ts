import { parseStoredLink, type StoredLink, type StoredLinkReply } from '../accounts/account-store.js';
import { ACTOR_MAILBOX_FIELDS, type StoredActorFields } from '../engine/actor-persistence.js';
import { accountKeys } from '../redis/keys.js';
import { hashReplyEntries, runScript, runScriptForBytes, type Fence, type RedisClient } from '../redis/scripts.js';

/** A lease this process holds on one account: its fencing token goes with every write. */
export interface Lease extends Fence {
  accountId: string;
  /** "<owner>|<token>", the lease key's value while we hold it. */
  value: string;
  /** The actor's stored state, read in the same step as the grant (see parseStoredActor). */
  stored: StoredActorFields;
  /** The account's link as the grant found it (see AccountStore.fromStored); null when unlinked. */
  link: StoredLink | null;
}

/**
 * Single ownership of an account across processes: a lease in Redis (`SET … PX`, renewed while the
 * actor lives) plus a fencing token (a new one on every grant, above every earlier one and at least
 * Redis's clock in µs: lua/lib/next-fence.lua). The lease makes takeovers rare; the token makes
 * them safe: a process that paused past its lease has every write refused.
 */
export class Leases {
  constructor(private readonly redis: RedisClient, readonly ownerId: string, readonly ttlMs: number) {
    if (ownerId.includes('|')) throw new Error('owner id must not contain "|"');
  }

  /** The lease (with the actor's stored state), or null when another process holds it. */
  async acquire(accountId: string): Promise<Lease | null> {
    const k = accountKeys(accountId);
    // As bytes: the link's sealed credentials are not text (the rest is decoded here).
    const [token, actor, mailbox, link] = await runScriptForBytes<[number, Buffer[]?, (Buffer | null)[]?, StoredLinkReply?]>(
      this.redis, 'leaseAcquire', [k.lease, k.fence, k.actor, k.credentials], [this.ownerId, this.ttlMs, ...ACTOR_MAILBOX_FIELDS]);
    if (!token) return null;
    const text = (value: Buffer | null) => value?.toString('utf8') ?? null;
    return {
      accountId,
      key: k.fence,
      token,
      value: `${this.ownerId}|${token}`,
      stored: { actor: Object.fromEntries(hashReplyEntries((actor ?? []).map((value) => value.toString('utf8')))), mailbox: (mailbox ?? []).map(text) },
      link: link ? parseStoredLink(link) : null,
    };
  }

  /** False when the lease expired or was taken: the actor must stop. */
  async renew(lease: Lease): Promise<boolean> {
    return (await runScript<number>(this.redis, 'leaseRenew', [accountKeys(lease.accountId).lease], [lease.value, this.ttlMs])) === 1;
  }

  /** Gives the lease back; `workWaiting` says whether the mailbox (read after the release) has work. */
  async release(lease: Lease): Promise<{ released: boolean; workWaiting: boolean }> {
    const k = accountKeys(lease.accountId);
    const [released, work] = await runScript<[number, number]>(this.redis, 'leaseRelease', [k.lease, k.mailbox], [lease.value]);
    return { released: released === 1, workWaiting: work === 1 };
  }

  /** Who holds the account's lease now ("<owner>|<token>"), or null. */
  async holder(accountId: string): Promise<string | null> {
    return this.redis.get(accountKeys(accountId).lease);
  }
}
