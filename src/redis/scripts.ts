import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Redis, Cluster } from 'ioredis';

export type RedisClient = Redis | Cluster;

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));

/**
 * Prepended to every script whose second line is `-- fenced`: the caller passes the account's fence
 * key before the script's own keys and its fencing token before its own arguments. A token that is
 * not the current one (a process that paused past its lease while another took over) makes the
 * write fail with FENCED before it touches anything; the script body then sees only its own keys
 * and arguments. The engine always passes a token (or one that can never match when it holds no
 * lease); an empty token (tests, tools working on a stopped engine) writes unfenced.
 */
const FENCE_PRELUDE = `
local fenceKey = table.remove(KEYS, 1)
local fenceToken = table.remove(ARGV, 1)
if fenceToken ~= '' and redis.call('HGET', fenceKey, 'fence') ~= fenceToken then
  return redis.error_reply('FENCED the account is owned by a newer lease (token ' .. tostring(fenceToken) .. ')')
end
`;

/** The error a fenced script fails with when the caller's lease was superseded. */
export function isFencedError(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('FENCED');
}

/** The fence of one account as the owner of its lease sees it. */
export interface Fence {
  /** The hash whose `fence` field holds the account's current token (`accountKeys().fence`). */
  key: string;
  /** The current fencing token as the caller knows it; '' writes unfenced. */
  token: number | string;
}

/** Which fencing token the caller writes an account's state with. */
export type FenceTokenOf = (accountId: string) => string;

export const UNFENCED: FenceTokenOf = () => '';

/**
 * Loads every `lua/<name>.lua` file as an ioredis command named after the file in camelCase
 * (`entry-set.lua` -> `entrySet`). The first line of each file declares its key count:
 * `-- keys: N`; a `-- uses: …` line puts shared `lua/lib/` functions before it. ioredis sends
 * EVALSHA and falls back to EVAL on NOSCRIPT, so a restarted Redis
 * with an empty script cache needs nothing from us.
 */
export function defineScripts(redis: RedisClient): void {
  for (const file of readdirSync(LUA_DIR)) {
    if (!file.endsWith('.lua')) continue;
    const lua = readFileSync(join(LUA_DIR, file), 'utf8');
    const header = /^-- keys: (\d+)/.exec(lua);
    if (!header) throw new Error(`${file}: first line must be "-- keys: N"`);
    const name = file.slice(0, -4).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const fenced = /^-- keys: \d+\r?\n-- fenced\b/.test(lua);
    const body = librariesUsedBy(file, lua) + lua;
    redis.defineCommand(name, fenced ? { numberOfKeys: Number(header[1]) + 1, lua: FENCE_PRELUDE + body } : { numberOfKeys: Number(header[1]), lua: body });
  }
}

/**
 * The `lua/lib/<name>.lua` files a script names in a `-- uses: a, b` line, to be put before it: rules
 * two scripts share (an entry's upsert, a download's completion) live in one file. Each defines
 * local functions and runs nothing; a script sees only what it names.
 */
function librariesUsedBy(file: string, lua: string): string {
  const uses = /^-- uses: (.+)$/m.exec(lua);
  if (!uses) return '';
  return uses[1]!
    .split(',')
    .map((name) => name.trim())
    .map((name) => {
      if (!/^[a-z-]+$/.test(name)) throw new Error(`${file}: "-- uses:" names lua/lib files, not ${JSON.stringify(name)}`);
      return readFileSync(join(LUA_DIR, 'lib', `${name}.lua`), 'utf8') + '\n';
    })
    .join('');
}

/** Runs a `-- fenced` script as the holder of `fence`. */
export function runFencedScript<T>(
  redis: RedisClient,
  name: string,
  fence: Fence,
  keys: readonly string[],
  args: readonly (string | number)[] = [],
): Promise<T> {
  return runScript<T>(redis, name, [fence.key, ...keys], [fence.token, ...args]);
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

/** HGETALL's reply as a script returns it ([field, value, ...]: ioredis converts only the command's own) as pairs. */
export function hashReplyEntries(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
