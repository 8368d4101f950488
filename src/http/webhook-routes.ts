import type { IncomingMessage } from 'node:http';
import { Hono, type Context } from 'hono';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../logger.js';
import { isRedisUnavailable } from '../redis/redis-errors.js';
import { isValidWebhookSignature, webhookAccounts } from './webhook-signature.js';

export const MAX_WEBHOOK_BYTES = 1024 * 1024;

/** Reused: a decoder per request costs more than the rest of the parse. Fatal: bad UTF-8 is a 400. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });
const EMPTY = Buffer.alloc(0);

/** What @hono/node-server passes as `c.env`; absent when the app is run some other way. */
type Bindings = { incoming?: IncomingMessage };

export interface WebhookRouteOptions {
  engine: Engine;
  appSecret: string;
  log: Logger;
  /** True while shutting down: Dropbox should retry elsewhere or later. */
  draining?: () => boolean;
}

/** The body was cut off by the client: nothing to answer. */
class BodyAborted extends Error {}

/**
 * The request body straight from Node's IncomingMessage, or `null` once it passes `limit` (the rest
 * is then read and dropped, never kept). hono's `bodyLimit` cut the route's throughput by 3×
 * (docs/benchmarks.md, figure 1), and `c.req.arrayBuffer()` adds a promise chain, four listeners
 * added and removed, and a copy of the body to every request.
 *
 * The listeners are anonymous and never removed: they go with the request, a promise settles only
 * once, and a named closure costs a `__name` property definition per request under tsx.
 */
function readIncoming(incoming: IncomingMessage, limit: number): Promise<Buffer | null> {
  // Only if a middleware ran first and awaited: 'close' or 'end' would never come again.
  if (incoming.destroyed) return Promise.reject(new BodyAborted('the client went away before the body was read'));
  if (incoming.readableDidRead) return Promise.reject(new Error('the webhook body was read before the route'));
  return new Promise((resolve, reject) => {
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    let size = 0;
    incoming.on('data', (chunk: Buffer) => {
      if (size > limit) return; // refused already: the rest is dropped as it arrives
      size += chunk.length;
      if (size > limit) {
        // The stream keeps flowing, so the socket is not closed on unread bytes (a reset could
        // destroy the 413 on its way to the client).
        first = more = undefined;
        resolve(null);
      } else if (first === undefined) first = chunk;
      else (more ??= [first]).push(chunk);
    });
    incoming.on('end', () => resolve(more ? Buffer.concat(more, size) : first ?? EMPTY));
    // Without an 'error' listener Node destroys an aborted request quietly: 'close' before the
    // message was complete is the only sign.
    incoming.on('close', () => {
      if (!incoming.complete) reject(new BodyAborted('the client went away before the end of the body'));
    });
  });
}

/** Outside Node (no IncomingMessage): the web stream, with the same limit. */
async function readWebBody(stream: ReadableStream<Uint8Array> | null, limit: number): Promise<Buffer | null> {
  if (!stream) return EMPTY;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, size);
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
}

/** Dropbox webhooks: the verification challenge, and signed notifications. */
export function webhookRoutes(options: WebhookRouteOptions): Hono<{ Bindings: Bindings }> {
  const routes = new Hono<{ Bindings: Bindings }>();
  const { engine, appSecret, log } = options;
  const refused = (reason: 'signature' | 'malformed' | 'too_large' | 'unavailable' | 'aborted') => engine.events.report('webhook', { outcome: 'refused', reason, accounts: 0 });

  routes.get('/', (c) => {
    const challenge = c.req.query('challenge');
    if (challenge === undefined) return c.text('missing challenge', 400);
    c.header('X-Content-Type-Options', 'nosniff');
    return c.body(challenge, 200, { 'Content-Type': 'text/plain' });
  });

  const tooLarge = (c: Context) => {
    refused('too_large');
    // `Connection: close`: the unread rest of the body is still on the wire, so the connection
    // cannot carry another request (a client reusing it would see it reset mid-request).
    return c.text('payload too large', 413, { Connection: 'close' });
  };

  async function handle(c: Context, read: Promise<Buffer | null>, signature: string | undefined): Promise<Response> {
    let body;
    try {
      body = await read;
    } catch (error) {
      if (!(error instanceof BodyAborted)) throw error;
      refused('aborted');
      return c.text('', 400); // nobody is left to read it
    }
    if (body === null) return tooLarge(c);
    if (!isValidWebhookSignature(body, signature, appSecret)) {
      log.warn({ bytes: body.length }, 'webhook refused: bad signature');
      refused('signature');
      return c.text('invalid signature', 403);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(UTF8.decode(body));
    } catch {
      refused('malformed');
      return c.text('body is not JSON', 400);
    }
    const accounts = webhookAccounts(parsed);
    if (accounts === null) {
      refused('malformed');
      return c.text('list_folder.accounts must be an array of strings', 400);
    }
    let outcomes;
    try {
      outcomes = await engine.notify(accounts);
    } catch (error) {
      // Anything else is a bug: the app's error handler logs it with its stack (500; Dropbox retries).
      if (!isRedisUnavailable(error)) throw error;
      log.error({ err: (error as Error).message, accounts: accounts.length }, 'webhook not recorded: Redis unavailable');
      refused('unavailable');
      return c.text('temporarily unavailable', 503);
    }
    const marked: string[] = [];
    for (const accountId in outcomes) {
      const outcome = outcomes[accountId];
      if (outcome === 'unknown' || outcome === 'invalid') log.info({ accountId, outcome }, 'webhook for an account that is not linked');
      else marked.push(accountId);
    }
    engine.events.report('webhook', { outcome: 'accepted', accounts: accounts.length, accountIds: marked });
    return c.text('', 200);
  }

  // One handler, no middleware: hono then calls it directly instead of composing a chain.
  routes.post('/', (c) => {
    if (options.draining?.()) {
      refused('unavailable');
      return c.text('shutting down', 503);
    }
    const incoming = c.env?.incoming;
    const declared = incoming ? incoming.headers['content-length'] : c.req.header('Content-Length');
    // A declared length is refused before a byte of the body is read. Without one (chunked), the
    // limit is counted as the body streams in.
    if (declared !== undefined) {
      const length = Number(declared);
      if (!Number.isSafeInteger(length) || length < 0) {
        refused('malformed');
        return c.text('invalid Content-Length', 400);
      }
      if (length > MAX_WEBHOOK_BYTES) return tooLarge(c);
    }
    const signature = incoming ? headerValue(incoming.headers['x-dropbox-signature']) : c.req.header('X-Dropbox-Signature');
    const read = incoming ? readIncoming(incoming, MAX_WEBHOOK_BYTES) : readWebBody(c.req.raw.body, MAX_WEBHOOK_BYTES);
    return handle(c, read, signature);
  });
  return routes;
}

/** Node joins a repeated unknown header with ", ", as the fetch Headers class does: never a valid signature. */
function headerValue(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.join(', ');
}
