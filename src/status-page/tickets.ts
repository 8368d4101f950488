import { randomBytes } from 'node:crypto';

/**
 * One-time tickets for `GET /events`: EventSource cannot send an Authorization header, and the
 * admin token must not travel in a URL (URLs end up in access logs and browser history). A page
 * holding the token trades it (`POST /events/ticket`) for a random ticket that opens one stream
 * within `ttlMs`; a logged ticket is worthless once used or expired.
 */
export class TicketBook {
  private readonly tickets = new Map<string, number>();

  constructor(
    private readonly options: { ttlMs?: number; max?: number; now?: () => number } = {},
  ) {}

  get ttlMs(): number {
    return this.options.ttlMs ?? 30_000;
  }

  issue(): { ticket: string; expiresAt: number } {
    const now = this.now();
    this.purge(now);
    // Bounded: a client asking for tickets in a loop pushes out the oldest, not the memory limit.
    const max = this.options.max ?? 1_000;
    while (this.tickets.size >= max) this.tickets.delete(this.tickets.keys().next().value!);
    const ticket = randomBytes(24).toString('base64url');
    const expiresAt = now + this.ttlMs;
    this.tickets.set(ticket, expiresAt);
    return { ticket, expiresAt };
  }

  /** True once for a ticket issued less than `ttlMs` ago; false for unknown, used or expired ones. */
  redeem(ticket: string | undefined | null): boolean {
    if (!ticket) return false;
    const expiresAt = this.tickets.get(ticket);
    if (expiresAt === undefined) return false;
    this.tickets.delete(ticket);
    return this.now() < expiresAt;
  }

  get outstanding(): number {
    this.purge(this.now());
    return this.tickets.size;
  }

  private purge(now: number): void {
    for (const [ticket, expiresAt] of this.tickets) if (expiresAt <= now) this.tickets.delete(ticket);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}
