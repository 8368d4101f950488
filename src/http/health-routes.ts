import { Hono } from 'hono';
import type { RedisClient } from '../redis/scripts.js';

/** `/healthz`: the process answers. `/readyz`: Redis answers too (else 503). */
export function healthRoutes(redis: RedisClient): Hono {
  const routes = new Hono();
  routes.get('/healthz', (c) => c.json({ ok: true }));
  routes.get('/readyz', async (c) => {
    try {
      await redis.ping();
      return c.json({ ok: true, redis: 'up' });
    } catch (error) {
      return c.json({ ok: false, redis: 'down', message: (error as Error).message }, 503);
    }
  });
  return routes;
}
