import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Redis, Cluster } from 'ioredis';

export type RedisClient = Redis | Cluster;

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));

/**
 * Loads every `lua/<name>.lua` file as an ioredis command named after the file in camelCase
 * (`entry-set.lua` -> `entrySet`). The first line of each file declares its key count:
 * `-- keys: N`. ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT, so a restarted Redis
 * with an empty script cache needs nothing from us.
 */
export function defineScripts(redis: RedisClient): void {
  for (const file of readdirSync(LUA_DIR)) {
    if (!file.endsWith('.lua')) continue;
    const lua = readFileSync(join(LUA_DIR, file), 'utf8');
    const header = /^-- keys: (\d+)/.exec(lua);
    if (!header) throw new Error(`${file}: first line must be "-- keys: N"`);
    const name = file.slice(0, -4).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    redis.defineCommand(name, { numberOfKeys: Number(header[1]), lua });
  }
}

/** Runs a script loaded by `defineScripts`; keys first, then arguments. */
export function runScript<T>(
  redis: RedisClient,
  name: string,
  keys: readonly string[],
  args: readonly (string | number)[] = [],
): Promise<T> {
  const command = (redis as unknown as Record<string, unknown>)[name];
  if (typeof command !== 'function') throw new Error(`Redis script ${name} is not defined (defineScripts not called?)`);
  return (command as (...a: unknown[]) => Promise<T>).call(redis, ...keys, ...args);
}
