import { OneTimeTickets } from '../http/one-time-tickets.js';
import { oauthStartTicketKey } from '../redis/keys.js';
import type { RedisClient } from '../redis/scripts.js';
import { STATE_TTL_SECONDS } from './state-store.js';

/**
 * How long a start link stays good: as long as the authorization it starts, which leaves time to
 * pass the link to whoever signs in to the Dropbox account, while one copied from a log goes stale.
 */
export const START_TICKET_TTL_SECONDS = STATE_TTL_SECONDS;

/** The tickets of start links: `POST /oauth/start` issues them, its page shows one, `POST /oauth/continue` spends it. */
export class OAuthStartTickets extends OneTimeTickets {
  constructor(redis: RedisClient) {
    super(redis, oauthStartTicketKey, START_TICKET_TTL_SECONDS * 1000);
  }
}
