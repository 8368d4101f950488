import { Hono } from 'hono';
import type { RedisClient } from '../redis/scripts.js';
import { probeWrites } from '../redis/write-probe.js';

/**
 * `/healthz`: the process answers. `/readyz`: Redis answers too and takes writes (else 503; see
 * probeWrites: a replica, or a primary out of memory, answers PING but fails every webhook).
 */
export function healthRoutes(redis: RedisClient): Hono {
  const routes = new Hono();
  routes.get('/healthz', (c) => c.json({ ok: true }));
  routes.get('/readyz', async (c) => {
    try {
      const refusal = await probeWrites(redis);
      if (refusal) return c.json({ ok: false, redis: refusal.state, message: refusal.message }, 503);
      return c.json({ ok: true, redis: 'up' });
    } catch (error) {
      return c.json({ ok: false, redis: 'down', message: downMessage(redis, error) }, 503);
    }
  });
  return routes;
}

/**
 * What an operator reads when the probe fails. With the connection down, ioredis refuses the
 * command with its own words ("Stream isn't writeable and enableOfflineQueue options is false"),
 * which say nothing of Redis; the connection's state does (its errors, host and port included, are
 * in the log, not in an answer a probe without the admin token reads).
 */
function downMessage(redis: RedisClient, error: unknown): string {
  if (redis.status !== 'ready') return `no connection to Redis (the client is ${redis.status}; the log has its errors)`;
  return `Redis did not answer the probe: ${(error as Error).message}`;
}
