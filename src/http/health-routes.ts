import { Hono } from 'hono';
import { Redis } from 'ioredis';
import type { RedisClient } from '../redis/scripts.js';

/**
 * `/healthz`: the process answers. `/readyz`: Redis answers too and takes writes (else 503): a
 * replica answers PING, but every webhook would fail against it.
 */
export function healthRoutes(redis: RedisClient): Hono {
  const routes = new Hono();
  routes.get('/healthz', (c) => c.json({ ok: true }));
  routes.get('/readyz', async (c) => {
    try {
      // A cluster client sends writes to each slot's primary itself; a single node must be one.
      const role = redis instanceof Redis ? await roleOf(redis) : ((await redis.ping()), 'master');
      if (role !== 'master') return c.json({ ok: false, redis: 'read-only', message: `the Redis server is a ${role}: it takes no writes` }, 503);
      return c.json({ ok: true, redis: 'up' });
    } catch (error) {
      return c.json({ ok: false, redis: 'down', message: downMessage(redis, error) }, 503);
    }
  });
  return routes;
}

/** The server's role; 'master' when ROLE is not allowed (an ACL without it, a proxy hiding it) and PING answers. */
async function roleOf(redis: Redis): Promise<string> {
  try {
    return String((await redis.role())[0]);
  } catch (error) {
    if (!/NOPERM|unknown command/i.test((error as Error).message)) throw error;
    await redis.ping();
    return 'master';
  }
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
