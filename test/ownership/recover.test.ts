import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromPromise } from 'xstate';
import { accountMachine, type FinishOutput, type StepInput } from '../../machines/account.machine.js';
import { AccountStore } from '../../src/accounts/account-store.js';
import { AccountHost, DEFAULT_STATE_DEADLINES_MS } from '../../src/engine/account-host.js';
import { ActorPersistence } from '../../src/engine/actor-persistence.js';
import { systemClock } from '../../src/engine/clock.js';
import { EngineEvents } from '../../src/engine/engine-events.js';
import { createLogger } from '../../src/logger.js';
import { Mailbox } from '../../src/mailbox/mailbox.js';
import { Leases } from '../../src/ownership/leases.js';
import { accountKeys } from '../../src/redis/keys.js';
import { SyncStore } from '../../src/sync/sync-store.js';
import { startTestRedisClient } from '../support/redis-server.js';
import { waitUntil } from '../support/sync-harness.js';
import { Writable } from 'node:stream';
import { storedActorState } from '../support/stored-actor.js';

/**
 * An actor that errors (here: an action throws, which puts an XState actor in status 'error' for
 * good) is not left dead: the host logs it and rebuilds the actor from its last persisted snapshot,
 * which carries on to idle. The process never sees an unhandled error.
 */
let redis: Redis;
let stopRedis: () => Promise<void>;
beforeAll(async () => {
  ({ redis, stop: stopRedis } = await startTestRedisClient());
});
afterAll(() => stopRedis());

describe('an actor that errors', () => {
  it('is rebuilt from its last good snapshot and reaches idle', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: new Writable({ write(chunk, _e, done) { lines.push(String(chunk)); done(); } }) });
    let finishes = 0;
    const step = fromPromise<unknown, StepInput>(async () => undefined);
    const machine = accountMachine.provide({
      actors: {
        listChanges: step,
        applyChanges: step,
        downloadQueue: step,
        finishRun: fromPromise<FinishOutput, StepInput>(async () => ({ next: 'idle', at: Date.now() })),
        waitUntil: fromPromise<void, { until: number }>(async () => undefined),
      },
      actions: {
        runCompleted: () => {
          finishes++;
          if (finishes === 1) throw new Error('a bug in an action');
        },
      },
    });
    let host!: AccountHost;
    const fenceOf = (accountId: string) => host.fenceToken(accountId);
    host = new AccountHost({
      machine,
      persistence: new ActorPersistence(redis, fenceOf),
      mailbox: new Mailbox(redis, fenceOf),
      store: new SyncStore(redis, fenceOf),
      accounts: new AccountStore(redis),
      leases: new Leases(redis, 'test-host', 10_000),
      clock: systemClock,
      log,
      events: new EngineEvents(),
      idleTimeoutMs: 60_000,
      maxActiveRuns: 8,
      stateDeadlinesMs: DEFAULT_STATE_DEADLINES_MS,
      watchdogIntervalMs: 60_000,
    });
    const account = 'dbid:recover';
    // The host runs linked accounts only. The link asks for a sync (its mailbox says running); the
    // fake steps here never clear that, so it is cleared by hand: the rebuilt actor must not find
    // a webhook waiting, or it would start a third run.
    await new AccountStore(redis).link(account, { accessToken: 'token-recover' }, [], Date.now());
    await redis.hset(accountKeys(account).mailbox, 'status', 'idle', 'dirty', '0');
    expect(await host.send(account, { type: 'WEBHOOK' })).toBe(true);
    const first = host.actor(account);
    await waitUntil(() => lines.some((l) => l.includes('actor failed; restoring it from its last snapshot')), 5_000, 'the failure to be noticed');
    await waitUntil(() => host.actor(account) !== undefined && host.actor(account) !== first && host.actor(account)?.getSnapshot().value === 'idle', 10_000, 'a rebuilt actor to reach idle');
    expect(finishes).toBe(2); // the failed step's end ran again in the rebuilt actor, from the last snapshot
    await host.flush();
    expect(await storedActorState(redis, account)).toBe('idle');
    await host.close();
  });
});
