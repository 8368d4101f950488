import type { Redis } from 'ioredis';
import { accountKeys } from '../src/redis/keys.js';
import { scriptNameOfSha } from '../src/redis/scripts.js';
import { isIdle, linkAccount, postWebhook, round, startStack, waitUntil, type BenchOptions, type FigureResult, type Stack } from './lib.js';

/**
 * Figure 2: Redis round trips per webhook per account. Every command the engine's connection sends
 * is recorded (script calls named after their script); `INFO commandstats` confirms the count of
 * script calls server-side. The webhook's own path is what the HTTP answer waits for: measured with
 * the background wake switched off, so nothing else can land in the window. The wake (actor start
 * for a passivated account, then the sync) is counted separately: it is not on the webhook's path.
 */
class CommandLog {
  private names: string[] | undefined;
  constructor(redis: Redis) {
    const original = redis.sendCommand.bind(redis);
    redis.sendCommand = ((command: { name: string; args: unknown[] }, stream?: unknown) => {
      if (this.names) {
        const isScript = command.name === 'evalsha' || command.name === 'eval';
        this.names.push(isScript ? `script:${scriptNameOfSha(String(command.args[0])) ?? '?'}` : command.name);
      }
      return original(command as never, stream as never);
    }) as Redis['sendCommand'];
  }

  start(): void {
    this.names = [];
  }

  stop(): string[] {
    const names = this.names ?? [];
    this.names = undefined;
    return names;
  }
}

async function scriptCalls(admin: Redis): Promise<number> {
  const info = await admin.info('commandstats');
  let calls = 0;
  for (const match of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(match[2]);
  return calls;
}

const tally = (names: readonly string[]) => names.reduce<Record<string, number>>((t, n) => ((t[n] = (t[n] ?? 0) + 1), t), {});

type Wake = { disable(): void; enable(): void };
function wakeSwitch(stack: Stack): Wake {
  const engine = stack.engine as unknown as Record<string, unknown>;
  return {
    disable: () => { engine.wakeInBackground = () => {}; },
    enable: () => { delete engine.wakeInBackground; },
  };
}

export async function redisRoundTrips(options: BenchOptions): Promise<FigureResult> {
  const webhooks = options.quick ? 3 : 30;
  const stack = await startStack({ engine: { idleTimeoutMs: 600_000 } });
  const admin = stack.redis.duplicate();
  await admin.connect().catch(() => undefined);
  const log = new CommandLog(stack.redis);
  const wake = wakeSwitch(stack);
  try {
    // (a) An account whose run is going: the webhook marks it dirty; nothing to wake.
    const busy = 'dbid:rt-busy';
    await stack.engine.accounts.link(busy, { accessToken: 't' }, [], Date.now()); // mailbox running, no actor
    let before = await scriptCalls(admin);
    log.start();
    for (let i = 0; i < webhooks; i++) await postWebhook(stack.url, [busy]);
    const busyNames = log.stop();
    const busyServer = (await scriptCalls(admin)) - before;

    // (b) A linked idle account whose actor is in memory, (c) one whose actor was passivated.
    const idle = 'dbid:rt-idle';
    await linkAccount(stack, idle);
    await waitUntil(() => isIdle(stack, idle), 20_000, 'first sync');
    // The first sync's last snapshot write can still be on its way: it is not the webhook's.
    await stack.engine.host.flush();
    const measure = async (passivate: boolean) => {
      const path: string[] = [];
      const wakeAndSync: string[] = [];
      let server = 0;
      for (let i = 0; i < webhooks; i++) {
        if (passivate) await stack.engine.host.stop(idle);
        // Path only: the wake switched off, so every command in the window is the webhook's.
        wake.disable();
        before = await scriptCalls(admin);
        log.start();
        await postWebhook(stack.url, [idle]);
        path.push(...log.stop());
        server += (await scriptCalls(admin)) - before;
        wake.enable();
        // Then the wake the webhook would have started, to the end of the sync it causes.
        log.start();
        await stack.engine.host.send(idle, { type: 'WEBHOOK' });
        // Polled on another connection, so the polling is not counted.
        await waitUntil(async () => {
          const box = await admin.hgetall(accountKeys(idle).mailbox);
          return box.status === 'idle' && box.dirty !== '1' && stack.engine.host.actor(idle)?.getSnapshot().value === 'idle';
        }, 20_000, 'the sync after the webhook', 2);
        await stack.engine.host.flush();
        wakeAndSync.push(...log.stop());
      }
      return { path, wakeAndSync, server };
    };
    const inMemory = await measure(false);
    const passivated = await measure(true);

    const perWebhook = (n: number) => round(n / webhooks, 3);
    const worst = Math.max(busyNames.length, inMemory.path.length, passivated.path.length) / webhooks;
    return {
      id: '2',
      name: 'Redis round trips per webhook per account',
      measured: round(worst, 3),
      unit: 'round trips',
      baseline: 1,
      baselineLabel: 'target',
      ratio: round(worst, 3),
      ratioLabel: 'of the target',
      target: 'exactly 1',
      met: busyNames.length === webhooks && inMemory.path.length === webhooks && passivated.path.length === webhooks,
      details: {
        webhooksPerCase: webhooks,
        runGoing: { onPath: perWebhook(busyNames.length), commands: tally(busyNames), scriptCallsServerSide: perWebhook(busyServer) },
        idleActorInMemory: {
          onPath: perWebhook(inMemory.path.length), commands: tally(inMemory.path), scriptCallsServerSide: perWebhook(inMemory.server),
          wakeAndSyncNotOnPath: perWebhook(inMemory.wakeAndSync.length), wakeAndSyncCommands: tally(inMemory.wakeAndSync),
        },
        idlePassivated: {
          onPath: perWebhook(passivated.path.length), commands: tally(passivated.path), scriptCallsServerSide: perWebhook(passivated.server),
          wakeAndSyncNotOnPath: perWebhook(passivated.wakeAndSync.length), wakeAndSyncCommands: tally(passivated.wakeAndSync),
        },
      },
    };
  } finally {
    admin.disconnect();
    await stack.close();
  }
}
