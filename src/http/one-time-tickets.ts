import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient } from '../redis/scripts.js';

/** 32 random bytes as 43 base64url characters: anything else is no ticket. */
const TICKET = /^[A-Za-z0-9_-]{43}$/;

/**
 * A plain SHA-256, not a slow password hash: a ticket is 256 random bits, so there is nothing to
 * guess from its hash, and stealing a hash does not give the ticket.
 */
export function ticketHash(ticket: string): string {
  return createHash('sha256').update(ticket).digest('base64url');
}

/**
 * One-time tickets that stand in for the admin token where a browser cannot send it as a header
 * (a link opened in a browser, an EventSource), since the token must not travel in a URL (URLs end
 * up in access logs and browser history). A holder of the token trades it for a ticket that opens
 * one request within the TTL; a logged ticket is worthless once used or expired. Kept in Redis, by
 * hash, so a ticket issued by one process opens the request at any other behind the same load
 * balancer.
 */
export class OneTimeTickets {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyOf: (ticketHash: string) => string,
    readonly ttlMs: number,
  ) {}

  async issue(): Promise<{ ticket: string; expiresInMs: number }> {
    const ticket = randomBytes(32).toString('base64url');
    await this.redis.set(this.keyOf(ticketHash(ticket)), '1', 'PX', this.ttlMs);
    return { ticket, expiresInMs: this.ttlMs };
  }

  /** Whether the ticket would open its request now, without spending it. */
  async isLive(ticket: string | undefined | null): Promise<boolean> {
    if (!ticket || !TICKET.test(ticket)) return false;
    return (await this.redis.exists(this.keyOf(ticketHash(ticket)))) === 1;
  }

  /** True once for a ticket issued less than the TTL ago; false for an unknown, used or expired one. */
  async redeem(ticket: string | undefined | null): Promise<boolean> {
    if (!ticket || !TICKET.test(ticket)) return false;
    // DEL answers how many keys it removed, so of any number of processes redeeming at once exactly
    // one sees 1, and a key past its TTL counts as absent: atomic on any Redis, no GETDEL or script.
    return (await this.redis.del(this.keyOf(ticketHash(ticket)))) === 1;
  }
}
