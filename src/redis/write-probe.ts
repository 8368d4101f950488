import { Redis } from 'ioredis';
import { READY_PROBE_KEY } from './keys.js';
import { redisRefusesWrites } from './redis-errors.js';
import type { RedisClient } from './scripts.js';

/** The probe's key outlives a probe interval or two, no more: it is a write, not a record. */
const PROBE_TTL_MS = 30_000;

/** Why Redis would refuse a webhook's write right now, or null when it takes writes. */
export type WriteRefusal = { state: 'read-only' | 'refusing-writes'; message: string } | null;

/**
 * Whether Redis takes writes, as a webhook needs it to: a replica answers PING, and a primary out of
 * memory under `noeviction`, or one whose RDB save fails, answers ROLE as a primary; only a write
 * tells (an expiring key, READY_PROBE_KEY). Throws when Redis does not answer at all.
 */
export async function probeWrites(redis: RedisClient): Promise<WriteRefusal> {
  // A cluster client sends writes to each slot's primary itself; a single node must be one.
  const role = redis instanceof Redis ? await roleOf(redis) : ((await redis.ping()), 'master');
  if (role !== 'master') return { state: 'read-only', message: `the Redis server is a ${role}: it takes no writes` };
  try {
    await redis.set(READY_PROBE_KEY, '1', 'PX', PROBE_TTL_MS);
    return null;
  } catch (error) {
    if (!redisRefusesWrites(error)) throw error;
    return { state: 'refusing-writes', message: `Redis refuses writes: ${(error as Error).message}` };
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
