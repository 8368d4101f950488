import { expect } from 'vitest';
import type { Redis } from 'ioredis';

/**
 * A small set or hash comes whole from one SCAN call when Redis keeps it compact (listpack: hashes
 * always, sets from Redis 7.2), so a paging test would see one page. A member over the compact
 * encoding's 64-byte values converts it for good, even once removed: the encoding a large one has.
 */
export async function useScanEncoding(redis: Redis, key: string, type: 'set' | 'hash'): Promise<void> {
  const long = `dbid:${'x'.repeat(100)}`;
  if (type === 'set') await redis.multi().sadd(key, long).srem(key, long).exec();
  else await redis.multi().hset(key, long, '-').hdel(key, long).exec();
  expect(await redis.object('ENCODING', key)).toBe('hashtable');
}
