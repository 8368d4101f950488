import { createHash } from 'node:crypto';
import { oauthStartTicketKey } from '../redis/keys.js';
import type { RedisClient } from '../redis/scripts.js';
import { randomToken } from './pkce.js';
import { STATE_TTL_SECONDS } from './state-store.js';

/**
 * How long a start link stays good: as long as the authorization it starts, which leaves time to
 * pass the link to whoever signs in to the Dropbox account, while one copied from a log goes stale.
 */
export const START_TICKET_TTL_SECONDS = STATE_TTL_SECONDS;

/** What `randomToken()` makes: 32 bytes as 43 base64url characters. Anything else is no ticket. */
const TICKET = /^[A-Za-z0-9_-]{43}$/;

/**
 * A plain SHA-256, not a slow password hash: a ticket is 256 random bits, so there is nothing to
 * guess from its hash, and stealing a hash does not give the ticket.
 */
export function startTicketHash(ticket: string): string {
  return createHash('sha256').update(ticket).digest('base64url');
}

/**
 * One-time tickets that open `GET /oauth/start` in a browser. A browser following a link cannot
 * send the admin token as a header, and the token must not travel in the URL (URLs end up in
 * access logs and browser history), so an operator holding the token trades it for a ticket
 * (`POST /oauth/start`) that opens one start within the TTL; a logged ticket is worthless once
 * used or expired. Kept in Redis, so a ticket issued by one process opens the flow at any other
 * behind the same load balancer.
 */
export class OAuthStartTickets {
  constructor(private readonly redis: RedisClient) {}

  async issue(): Promise<{ ticket: string; expiresInMs: number }> {
    const ticket = randomToken();
    await this.redis.set(oauthStartTicketKey(startTicketHash(ticket)), '1', 'EX', START_TICKET_TTL_SECONDS);
    return { ticket, expiresInMs: START_TICKET_TTL_SECONDS * 1000 };
  }

  /** True once for a ticket issued less than the TTL ago; false for an unknown, used or expired one. */
  async redeem(ticket: string): Promise<boolean> {
    if (!TICKET.test(ticket)) return false;
    // DEL answers how many keys it removed, so of any number of processes redeeming at once exactly
    // one sees 1, and a key past its TTL counts as absent: atomic on any Redis, no GETDEL or script.
    return (await this.redis.del(oauthStartTicketKey(startTicketHash(ticket)))) === 1;
  }
}
