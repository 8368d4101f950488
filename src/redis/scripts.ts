import { createHash } from 'node:crypto';
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

/** One Lua file, ready to run: its body with the libraries it uses (and the fence prelude) before it. */
interface LoadedScript {
  numberOfKeys: number;
  lua: string;
  sha: string;
}

/**
 * Every `lua/<name>.lua` file, by its name in camelCase (`entry-set.lua` -> `entrySet`). The first
 * line of each file declares its key count: `-- keys: N`; a `-- uses: …` line puts shared `lua/lib/`
 * functions before it.
 *
 * Not ioredis's `defineCommand`: with auto-pipelining on, ioredis builds a `Pipeline` for every
 * batch and copies every defined command onto it (two properties per script), which took 13.6 µs
 * per batch with these 22 scripts against 2.5 µs with none (docs/benchmarks.md, change 18). A
 * webhook or a step's command is often a batch of its own, so that was paid on most calls.
 */
function readScripts(): Map<string, LoadedScript> {
  const scripts = new Map<string, LoadedScript>();
  for (const file of readdirSync(LUA_DIR)) {
    if (!file.endsWith('.lua')) continue;
    const lua = readFileSync(join(LUA_DIR, file), 'utf8');
    const header = /^-- keys: (\d+)/.exec(lua);
    if (!header) throw new Error(`${file}: first line must be "-- keys: N"`);
    const name = file.slice(0, -4).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const fenced = /^-- keys: \d+\r?\n-- fenced\b/.test(lua);
    const body = (fenced ? FENCE_PRELUDE : '') + librariesUsedBy(file, lua) + lua;
    scripts.set(name, { numberOfKeys: Number(header[1]) + (fenced ? 1 : 0), lua: body, sha: createHash('sha1').update(body).digest('hex') });
  }
  return scripts;
}

const SCRIPTS = readScripts();

/**
 * Puts every script in the server's cache (SCRIPT LOAD), so that the first call of each is one
 * EVALSHA and not EVALSHA, NOSCRIPT, EVAL: a webhook stays one round trip from the first one on.
 * A server that loses its cache later (a restart) is covered by runScript's fallback anyway.
 */
export async function loadScripts(redis: Redis): Promise<void> {
  await Promise.all([...SCRIPTS.values()].map((script) => redis.script('LOAD', script.lua)));
}

/** The script a SHA1 names (for tools that watch EVALSHA commands go by), or undefined. */
export function scriptNameOfSha(sha: string): string | undefined {
  for (const [name, script] of SCRIPTS) if (script.sha === sha) return name;
  return undefined;
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

/** How a script's reply is read: as text (runScript) or with its strings as bytes (runScriptForBytes). */
export type ScriptRunner = <T>(redis: RedisClient, name: string, keys: readonly string[], args?: readonly (string | number | Buffer)[]) => Promise<T>;

/** Runs a `-- fenced` script as the holder of `fence`; `run` reads its reply (runScriptForBytes for bytes). */
export function runFencedScript<T>(
  redis: RedisClient,
  name: string,
  fence: Fence,
  keys: readonly string[],
  args: readonly (string | number | Buffer)[] = [],
  run: ScriptRunner = runScript,
): Promise<T> {
  return run<T>(redis, name, [fence.key, ...keys], [fence.token, ...args]);
}

/**
 * Runs one of the Lua files; keys first, then arguments. EVALSHA, and EVAL when Redis answers
 * NOSCRIPT (a restarted or flushed server has an empty script cache; EVAL also caches it again).
 * Both carry the keys, so a cluster client routes them to the node of the account's hash tag.
 * Every string in the reply is decoded as UTF-8: a script that returns bytes (sealed credentials)
 * runs through runScriptForBytes.
 */
export function runScript<T>(
  redis: RedisClient,
  name: string,
  keys: readonly string[],
  args: readonly (string | number | Buffer)[] = [],
): Promise<T> {
  return evalScript<T>(redis, name, keys, args, TEXT_REPLY);
}

/**
 * runScript for a script whose reply carries bytes that are not text (sealed credentials, a
 * cursor stored as bytes: src/sync/stored-cursor.ts): every string of the reply, nested ones too,
 * comes back as a Buffer, and the caller decodes the text parts itself. ioredis would decode them
 * as UTF-8, which replaces what is not valid UTF-8 and loses the bytes. Integers stay numbers, nil
 * stays null.
 */
export function runScriptForBytes<T>(
  redis: RedisClient,
  name: string,
  keys: readonly string[],
  args: readonly (string | number | Buffer)[] = [],
): Promise<T> {
  return evalScript<T>(redis, name, keys, args, BYTES_REPLY);
}

type ScriptCommand = (this: RedisClient, shaOrLua: string, numberOfKeys: number, ...keysAndArgs: (string | number | Buffer)[]) => Promise<unknown>;

/**
 * The client methods for EVALSHA and EVAL, with the reply read as text or as bytes. ioredis defines
 * `<command>Buffer` for every command at run time, but its types leave out `evalshaBuffer` and
 * `evalBuffer`. Not `callBuffer('evalsha', …)`: with auto-pipelining on, ioredis 6 replays a
 * `call`/`callBuffer` on the batch without its command name (the script's SHA went out as the command).
 */
const TEXT_REPLY = { sha: 'evalsha', lua: 'eval' } as const;
const BYTES_REPLY = { sha: 'evalshaBuffer', lua: 'evalBuffer' } as const;

/** EVALSHA, and EVAL when the server answers NOSCRIPT; the methods named by `reply` read the answer. */
function evalScript<T>(
  redis: RedisClient,
  name: string,
  keys: readonly string[],
  args: readonly (string | number | Buffer)[],
  reply: typeof TEXT_REPLY | typeof BYTES_REPLY,
): Promise<T> {
  const script = scriptNamed(name, keys);
  const client = redis as unknown as Record<string, ScriptCommand>;
  return (client[reply.sha]!.call(redis, script.sha, script.numberOfKeys, ...keys, ...args) as Promise<T>).catch((error: unknown) => {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return client[reply.lua]!.call(redis, script.lua, script.numberOfKeys, ...keys, ...args) as Promise<T>;
  });
}

function scriptNamed(name: string, keys: readonly string[]): LoadedScript {
  const script = SCRIPTS.get(name);
  if (!script) throw new Error(`no Lua script named ${name} in src/redis/lua`);
  if (keys.length !== script.numberOfKeys) throw new Error(`Lua script ${name} takes ${script.numberOfKeys} keys, was given ${keys.length}`);
  return script;
}

/** HGETALL's reply as a script returns it ([field, value, ...]: ioredis converts only the command's own) as pairs. */
export function hashReplyEntries(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
