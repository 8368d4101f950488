import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStore } from '../../src/accounts/account-store.js';
import { accountKeys } from '../../src/redis/keys.js';
import { scriptNameOfSha } from '../../src/redis/scripts.js';
import type { EngineProcess } from '../support/engine-process.js';
import { startProcessFixture, type ProcessFixture } from '../support/process-fixture.js';
import { RedisGate } from '../support/redis-gate.js';
import { waitUntil } from '../support/sync-harness.js';

/**
 * A SIGTERM while `npm start` is still booting (restoring the accounts a dead process left with
 * work) must shut down as cleanly as one later: the leases of the actors restored so far are given
 * back, so the next process does not wait LEASE_TTL_MS for them. A second signal exits at once.
 *
 * The engine reaches Redis through a RedisGate that lets its first lease grant through and holds
 * everything after it: the signal lands with one lease held and the boot still waiting for the next.
 */
let fixture: ProcessFixture;
const gates: RedisGate[] = [];
const LEASE_TTL_MS = 60_000;

beforeAll(async () => { fixture = await startProcessFixture('shutdown-boot'); });
afterAll(async () => {
  for (const gate of gates) gate.open();
  await fixture?.close();
  for (const gate of gates) await gate.stop();
});

/** A lease grant for one of `ids` (the accounts an earlier test left linked boot too). */
const isLeaseGrant = (ids: string[]) => (args: string[]) =>
  args[0]?.toLowerCase() === 'evalsha' && scriptNameOfSha(args[1]!) === 'leaseAcquire' && ids.some((id) => args.includes(accountKeys(id).lease));

/** Accounts linked while no engine ran (a dead process's work): boot wakes each of them. */
async function linkedWithWork(ids: string[]): Promise<void> {
  const store = new AccountStore(fixture.redis);
  for (const id of ids) {
    fixture.emulator.model.addAccount(id, { accessToken: `tok-${id}` });
    fixture.emulator.model.writeFile(id, '/posts/a.md', '# A');
    expect(await store.link(id, { accessToken: `tok-${id}` }, [], Date.now())).toBe(true);
  }
}

/** An engine booting through a gate, stopped right after its first lease grant. */
async function engineStuckInBoot(ids: string[]): Promise<{ engine: EngineProcess; child: ChildProcess; gate: RedisGate; exited: Promise<[number | null, NodeJS.Signals | null]> }> {
  await linkedWithWork(ids);
  const gate = await RedisGate.start({ host: '127.0.0.1', port: fixture.redisServer.port }, isLeaseGrant(ids));
  gates.push(gate);
  const engine = await fixture.startEngine({ REDIS_URL: gate.url, LEASE_TTL_MS: String(LEASE_TTL_MS), REDIS_COMMAND_TIMEOUT_MS: '60000', SWEEP_INTERVAL_MS: '200' });
  const child = engine.childProcess!;
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const granted = async () => (await Promise.all(ids.map((id) => fixture.redis.get(accountKeys(id).lease)))).filter(Boolean).length;
  await waitUntil(async () => gate.closed && (await granted()) === 1, 20_000, 'the first lease grant of the boot');
  expect(engine.output).not.toContain('resumed accounts with unfinished work'); // still booting
  return { engine, child, gate, exited };
}

describe('a signal while the engine boots', () => {
  it('SIGTERM drains, releases the leases taken so far and exits 0', async () => {
    const ids = ['dbid:boot-a', 'dbid:boot-b'];
    const { engine, child, gate, exited } = await engineStuckInBoot(ids);

    child.kill('SIGTERM');
    await waitUntil(() => engine.output.includes('"msg":"shutting down"') || child.exitCode !== null || child.signalCode !== null, 10_000, 'the engine to react to SIGTERM');
    gate.open();
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(engine.output).toContain('"msg":"stopped"');
    for (const id of ids) expect(await fixture.redis.get(accountKeys(id).lease)).toBeNull();
  }, 60_000);

  it('a second SIGTERM exits at once, without waiting for the shutdown', async () => {
    const ids = ['dbid:boot-c', 'dbid:boot-d'];
    const { engine, child, gate, exited } = await engineStuckInBoot(ids);

    child.kill('SIGTERM');
    // The shutdown cannot finish: the boot's next lease grant is held, and Redis commands wait a minute.
    await waitUntil(() => engine.output.includes('"msg":"shutting down"'), 10_000, 'the engine to start its shutdown');
    child.kill('SIGTERM');
    await waitUntil(() => child.exitCode !== null || child.signalCode !== null, 10_000, 'the second SIGTERM to end the process');
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 1, signal: null });
    expect(engine.output).not.toContain('"msg":"stopped"');
    gate.open();
  }, 60_000);
});
