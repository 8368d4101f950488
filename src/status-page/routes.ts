import { Hono } from 'hono';
import { accountMachine } from '../../machines/account.machine.js';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../logger.js';
import { requireAdmin } from '../http/admin-auth.js';
import { OneTimeTickets } from '../http/one-time-tickets.js';
import { statusTicketKey } from '../redis/keys.js';
import { sseRetry } from './messages.js';
import { renderStatusPage, type StatusPage } from './page.js';
import { engineSource, StatusHub, type StatusHubOptions } from './status-hub.js';

export interface StatusPageOptions {
  engine: Engine;
  adminToken: string;
  log?: Logger;
  hub?: StatusHubOptions;
  /** How long a ticket from `POST /events/ticket` may wait before opening its stream. */
  ticketTtlMs?: number;
  /** Open streams at most (each costs a little memory and a share of every broadcast). */
  maxStreams?: number;
  /** Aborted when the server shuts down: every stream ends (a stream never ends by itself, so it would hold the shutdown). */
  closing?: AbortSignal;
}

/**
 * What a stream may hold that its client has not read yet. A client that stops reading (a stalled
 * proxy, a suspended laptop) would otherwise have every broadcast queued for it in this process;
 * past this it is dropped, and its page reconnects with a fresh snapshot when it can.
 */
export const STREAM_BUFFER_LIMIT_BYTES = 1024 * 1024;

/** What `statusPageRoutes` exposes besides the routes, for tests. */
export interface StatusPageRoutes extends Hono {
  statusHub?: StatusHub;
  tickets?: OneTimeTickets;
}

let page: StatusPage | undefined;

/**
 * `GET /`: the status page (public: it carries no data and no secret).
 * `POST /events/ticket` (admin token): a one-time ticket for one stream, valid `ticketTtlMs`.
 * `GET /events?ticket=...`: Server-Sent Events, a snapshot of the accounts shown (at most the hub's
 * `maxAccounts`) and the number linked, then live updates.
 */
export function statusPageRoutes(options: StatusPageOptions): StatusPageRoutes {
  const routes: StatusPageRoutes = new Hono();
  // In Redis: behind a load balancer, the page's POST and its stream may reach two processes.
  const tickets = new OneTimeTickets(options.engine.options.redis, statusTicketKey, options.ticketTtlMs ?? 30_000);
  const hub = new StatusHub(engineSource(options.engine), {
    onError: (error) => options.log?.warn({ err: (error as Error).message }, 'status page: could not read account statuses'),
    ...options.hub,
  }).start();
  routes.statusHub = hub;
  routes.tickets = tickets;
  const maxStreams = options.maxStreams ?? 100;
  /** Streams between the check against maxStreams and joining the hub (reading their snapshot). */
  let opening = 0;

  routes.get('/', (c) => {
    page ??= renderStatusPage(accountMachine);
    c.header('Content-Security-Policy', page.contentSecurityPolicy);
    c.header('Cache-Control', 'no-store');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('X-Content-Type-Options', 'nosniff');
    return c.html(page.html);
  });

  routes.post('/events/ticket', requireAdmin(options.adminToken), async (c) => {
    const { ticket, expiresInMs } = await tickets.issue();
    c.header('Cache-Control', 'no-store');
    return c.json({ ticket, expiresInMs });
  });

  routes.get('/events', async (c) => {
    // Hono answers a HEAD with the GET handler's headers and drops its body without cancelling it:
    // a stream opened for a HEAD would never be read nor closed, holding a place among maxStreams
    // (and a ticket) for good. Refused before the ticket is spent.
    if (c.req.method === 'HEAD') return c.json({ error: 'not_found', message: 'no route HEAD /events: open the stream with GET /events?ticket=…' }, 404);
    if (options.closing?.aborted) return c.json({ error: 'unavailable', message: 'the server is shutting down' }, 503);
    if (!(await tickets.redeem(c.req.query('ticket')))) {
      return c.json({ error: 'unauthorized', message: 'open the stream with a fresh ticket from POST /events/ticket' }, 401);
    }
    // Counted with those still reading their snapshot: checked against the hub alone, every stream
    // opened at once passed before the first joined it.
    if (hub.clientCount + opening >= maxStreams) return c.json({ error: 'busy', message: 'too many open status streams' }, 503);

    const encoder = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let disconnect: (() => void) | undefined;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      options.closing?.removeEventListener('abort', end);
      disconnect?.();
    };
    /** The server shuts down: the stream ends, so the connection can close. */
    const end = () => {
      close();
      try {
        controller.close();
      } catch {
        // already closed or errored
      }
    };
    const body = new ReadableStream<Uint8Array>(
      {
        start: (ctl) => {
          controller = ctl;
        },
        cancel: close,
      },
      new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }),
    );
    c.req.raw.signal.addEventListener('abort', close, { once: true });
    options.closing?.addEventListener('abort', end, { once: true });
    const client = {
      send: (chunk: string) => {
        if (closed) throw new Error('stream closed');
        // desiredSize is the room left below the high-water mark: negative, what waits unread.
        if ((controller.desiredSize ?? 0) < -STREAM_BUFFER_LIMIT_BYTES) {
          // An error, not a close: a closed stream keeps what is queued until the client reads it,
          // and its connection open; an errored one drops both.
          close();
          const reason = new Error('the client stopped reading its stream');
          controller.error(reason);
          throw reason;
        }
        controller.enqueue(encoder.encode(chunk));
      },
    };
    client.send(sseRetry(2_000));
    opening++;
    try {
      disconnect = await hub.connect(client);
    } catch (error) {
      // close(), not just the flag: it takes the listener off the shutdown signal, which lives as
      // long as the server (one listener and its unread stream kept for every failed open).
      close();
      options.log?.warn({ err: (error as Error).message }, 'status page: could not read the snapshot');
      return c.json({ error: 'unavailable', message: 'could not read the account statuses; retry shortly' }, 503);
    } finally {
      opening--;
    }
    if (closed) disconnect();
    return new Response(body, {
      headers: {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        'X-Accel-Buffering': 'no',
      },
    });
  });

  return routes;
}
