import { ActorPersistence } from '../../src/engine/actor-persistence.js';
import type { RedisClient } from '../../src/redis/scripts.js';

/** The state the account's actor would be restored in, read the way the engine reads it. */
export async function storedActorState(redis: RedisClient, accountId: string): Promise<string | null> {
  return (await new ActorPersistence(redis).load(accountId))?.state ?? null;
}
