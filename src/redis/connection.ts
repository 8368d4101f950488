import { Redis } from 'ioredis';
import { defineScripts } from './scripts.js';

/**
 * The engine's Redis connection: fail fast instead of hanging. With the offline queue off a command
 * issued while Redis is down rejects at once (the caller backs off or answers 503), every command has
 * a deadline, and ioredis keeps reconnecting with backoff in the background.
 */
export function connectRedis(url: string, options: { commandTimeoutMs?: number } = {}): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 5_000,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
  });
  defineScripts(redis);
  return redis;
}

/** Connects and waits until the client is ready (the offline queue is off, so this must come first). */
export async function openRedis(url: string, options: { commandTimeoutMs?: number } = {}): Promise<Redis> {
  const redis = connectRedis(url, options);
  // Without a listener ioredis prints every reconnect error; the owner logs them instead.
  redis.on('error', () => {});
  await redis.connect();
  return redis;
}
