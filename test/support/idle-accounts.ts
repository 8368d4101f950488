import type { Redis } from 'ioredis';
import { accountKeys, LINKED_ACCOUNTS_KEY } from '../../src/redis/keys.js';

/**
 * Linked, idle, passivated accounts written straight to Redis as the engine leaves them
 * (docs/architecture.md, the key table): for tests of what grows with the number of accounts,
 * where linking and syncing hundreds through the engine would only cost time. `mailbox` overrides
 * fields of an account's mailbox (e.g. a `status` of running).
 */
export async function writeIdleAccounts(redis: Redis, ids: readonly string[], mailbox: (accountId: string) => Record<string, string> = () => ({})): Promise<void> {
  const now = String(Date.now());
  const pipeline = redis.pipeline();
  for (const accountId of ids) {
    const k = accountKeys(accountId);
    pipeline.hset(k.mailbox, { status: 'idle', dirty: '0', webhooks: '3', listedAt: now, fence: '7', actorVersion: '12', actorUpdatedAt: now, runs: '3', lastSyncedAt: now, linkedAt: now, ...mailbox(accountId) });
    pipeline.set(k.credentials, JSON.stringify({ accessToken: 'token' }));
    pipeline.set(k.cursor, 'cursor');
    pipeline.sadd(LINKED_ACCOUNTS_KEY, accountId);
  }
  await pipeline.exec();
}
