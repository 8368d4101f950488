import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../logger.js';
import { createMetrics } from '../observability/metrics.js';
import { isValidAccountId } from '../redis/keys.js';
import { isRedisUnavailable, redisRefusesWrites } from '../redis/redis-errors.js';
import type { RedisClient } from '../redis/scripts.js';
import { accountRoutes } from './account-routes.js';
import { requireAdmin } from './admin-auth.js';
import { healthRoutes } from './health-routes.js';
import { oauthRoutes } from './oauth-routes.js';
import { metricsRoutes } from './metrics-routes.js';
import { webhookRoutes } from './webhook-routes.js';
import { statusPageRoutes } from '../status-page/routes.js';

export interface AppOptions {
  engine: Engine;
  redis: RedisClient;
  appSecret: string;
  adminToken: string;
  log: Logger;
  draining?: () => boolean;
  /** Aborted when the server shuts down: long-lived responses (the status page's streams) end. */
  closing?: AbortSignal;
  /** The registry served at /metrics (default: a new one fed by the engine's events). */
  metrics?: Registry;
}

/** Wires routes to handlers; nothing else lives here. */
export function createApp(options: AppOptions): Hono {
  const app = new Hono();
  app.route('/', healthRoutes(options.redis));
  app.route('/webhooks/dropbox', webhookRoutes(options));
  app.use('/accounts/*', requireAdmin(options.adminToken));
  app.route('/accounts', accountRoutes(options.engine));
  app.route('/', statusPageRoutes(options));
  app.route('/oauth', oauthRoutes(options));
  app.use('/metrics', requireAdmin(options.adminToken));
  app.route('/metrics', metricsRoutes(options.metrics ?? createMetrics(options.engine)));
  // As every other error of the API: JSON, saying what is there (docs/contract.md).
  app.notFound((c) => c.json({ error: 'not_found', message: `no route ${c.req.method} ${c.req.path} (docs/contract.md lists the API)` }, 404));
  app.onError((error, c) => {
    const about = { ...accountOf(c.req.path), path: c.req.path };
    if (isRedisUnavailable(error)) {
      options.log.warn({ ...about, err: error.message }, 'request failed: Redis unavailable');
      const message = redisRefusesWrites(error) ? 'Redis refuses writes right now (the server log says why); retry shortly' : 'Redis is unreachable; retry shortly';
      return c.json({ error: 'unavailable', message }, 503);
    }
    options.log.error({ ...about, err: error }, 'request failed');
    return c.json({ error: 'internal', message: 'the request failed; see the server log' }, 500);
  });
  return app;
}

/** `{ accountId }` of a request to `/accounts/:accountId[/…]`, as on every other log line about an account. */
function accountOf(path: string): { accountId?: string } {
  const segment = /^\/accounts\/([^/]+)/.exec(path)?.[1];
  if (segment === undefined) return {};
  let accountId: string;
  try {
    accountId = decodeURIComponent(segment);
  } catch {
    return {};
  }
  return isValidAccountId(accountId) ? { accountId } : {};
}
