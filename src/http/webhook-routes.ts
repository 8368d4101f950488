import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../logger.js';
import { isValidWebhookSignature, webhookAccounts } from './webhook-signature.js';

export const MAX_WEBHOOK_BYTES = 1024 * 1024;

/** Reused: a decoder per request costs more than the rest of the parse. Fatal: bad UTF-8 is a 400. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export interface WebhookRouteOptions {
  engine: Engine;
  appSecret: string;
  log: Logger;
  /** True while shutting down: Dropbox should retry elsewhere or later. */
  draining?: () => boolean;
}

/** Dropbox webhooks: the verification challenge, and signed notifications. */
export function webhookRoutes(options: WebhookRouteOptions): Hono {
  const routes = new Hono();
  const { engine, appSecret, log } = options;
  const refused = (reason: 'signature' | 'malformed' | 'too_large' | 'unavailable') => engine.events.report('webhook', { outcome: 'refused', reason, accounts: 0 });

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

  async function handle(c: Context, body: Uint8Array): Promise<Response> {
    if (!isValidWebhookSignature(body, c.req.header('X-Dropbox-Signature'), appSecret)) {
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
      log.error({ err: (error as Error).message, accounts: accounts.length }, 'webhook not recorded: Redis unavailable');
      refused('unavailable');
      return c.text('temporarily unavailable', 503);
    }
    for (const [accountId, outcome] of Object.entries(outcomes)) {
      if (outcome === 'unknown' || outcome === 'invalid') log.info({ accountId, outcome }, 'webhook for an account that is not linked');
    }
    engine.events.report('webhook', { outcome: 'accepted', accounts: accounts.length });
    return c.text('', 200);
  }

  routes.post(
    '/',
    async (c, next) => {
      if (options.draining?.()) return c.text('shutting down', 503);
      // Fast path (what Dropbox sends): a declared length is checked before reading anything, and
      // the body is read in one go; Node's parser never delivers more than the declared bytes.
      // Streaming through bodyLimit costs ~3x the throughput (docs/benchmarks.md, figure 1).
      const declared = c.req.header('Content-Length');
      if (declared === undefined) return next();
      const length = Number(declared);
      if (!Number.isSafeInteger(length) || length < 0) return c.text('invalid Content-Length', 400);
      if (length > MAX_WEBHOOK_BYTES) return tooLarge(c);
      return handle(c, new Uint8Array(await c.req.arrayBuffer()));
    },
    // A chunked body has no declared length: count it as it streams, refuse past the limit.
    bodyLimit({ maxSize: MAX_WEBHOOK_BYTES, onError: tooLarge }),
    async (c) => handle(c, new Uint8Array(await c.req.arrayBuffer())),
  );
  return routes;
}
