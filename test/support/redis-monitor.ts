import type { Redis } from 'ioredis';
import { createHash } from 'node:crypto';
import { scriptNameOfSha } from '../../src/redis/scripts.js';

/**
 * The commands clients send to a real redis-server, as MONITOR reports them (in the order Redis ran
 * them; the commands a Lua script runs inside are left out). For tests that pin how many round
 * trips a behaviour costs.
 */
export class CommandLog {
  private readonly commands: string[][] = [];

  private constructor(private readonly monitor: Redis) {
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua') this.commands.push(args);
    });
  }

  static async start(redis: Redis): Promise<CommandLog> {
    return new CommandLog(await redis.duplicate().monitor());
  }

  /** The commands sent while `work` ran: ECHO markers through `redis` bound it on MONITOR's stream. */
  async during(redis: Redis, work: () => Promise<void>): Promise<string[][]> {
    const from = (await this.mark(redis, 'begin')) + 1;
    await work();
    return this.commands.slice(from, await this.mark(redis, 'end'));
  }

  stop(): void {
    this.monitor.disconnect();
  }

  /** Where an ECHO sent now lands in the log. */
  private async mark(redis: Redis, what: string): Promise<number> {
    const marker = `${what}-${this.commands.length}-${Date.now()}-${Math.random()}`;
    await redis.echo(marker);
    const deadline = Date.now() + 5_000;
    for (;;) {
      const at = this.commands.findIndex((args) => args[0]?.toLowerCase() === 'echo' && args[1] === marker);
      if (at !== -1) return at;
      if (Date.now() > deadline) throw new Error('MONITOR did not report the marker');
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/** How many of `sent` are `command` (any case) on `key`. */
export function countOf(sent: readonly string[][], command: string, key: string): number {
  return sent.filter((args) => args[0]?.toLowerCase() === command && args[1] === key).length;
}

/** How many of `sent` run the Lua script `name` (src/redis/lua, camelCase), by EVALSHA or EVAL. */
export function scriptRuns(sent: readonly string[][], name: string): number {
  return sent.filter((args) => {
    const command = args[0]?.toLowerCase();
    if (command === 'evalsha') return scriptNameOfSha(args[1]!) === name;
    return command === 'eval' && scriptNameOfSha(createHash('sha1').update(args[1]!).digest('hex')) === name;
  }).length;
}
