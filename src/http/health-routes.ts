import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { READY_PROBE_KEY } from '../redis/keys.js';
import { redisRefusesWrites } from '../redis/redis-errors.js';
import type { RedisClient } from '../redis/scripts.js';

/** The probe's key outlives a probe interval or two, no more: it is a write, not a record. */
const READY_PROBE_TTL_MS = 30_000;

/**
 * `/healthz`: the process answers. `/readyz`: Redis answers too and takes writes (else 503): a
 * replica answers PING, and a primary out of memory under `noeviction`, or one whose RDB save
 * fails, answers ROLE as a primary, but every webhook would fail against either.
 */
export function healthRoutes(redis: RedisClient): Hono {
  const routes = new Hono();
  routes.get('/healthz', (c) => c.json({ ok: true }));
  routes.get('/readyz', async (c) => {
    try {
      // A cluster client sends writes to each slot's primary itself; a single node must be one.
      const role = redis instanceof Redis ? await roleOf(redis) : ((await redis.ping()), 'master');
      if (role !== 'master') return c.json({ ok: false, redis: 'read-only', message: `the Redis server is a ${role}: it takes no writes` }, 503);
      const refusal = await writeRefusal(redis);
      if (refusal) return c.json({ ok: false, redis: 'refusing-writes', message: `Redis refuses writes: ${refusal}` }, 503);
      return c.json({ ok: true, redis: 'up' });
    } catch (error) {
      return c.json({ ok: false, redis: 'down', message: downMessage(redis, error) }, 503);
    }
  });
  return routes;
}

/** What Redis answered a small write, when it refused it as it would refuse a webhook's; else null. */
async function writeRefusal(redis: RedisClient): Promise<string | null> {
  try {
    await redis.set(READY_PROBE_KEY, '1', 'PX', READY_PROBE_TTL_MS);
    return null;
  } catch (error) {
    if (!redisRefusesWrites(error)) throw error;
    return (error as Error).message;
  }
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
