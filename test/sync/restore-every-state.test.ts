import { ActorPersistence } from '../../src/engine/actor-persistence.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedMirror, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';
import { walkReachableStates } from '../support/machine-walk.js';

/**
 * Every state the machine can reach (walked with xstate/graph) is persisted as if the process had
 * died there; a boot restores it against the real emulator and Redis, and each account makes
 * progress to idle with an exact mirror (an account awaiting a re-link once it is re-linked, its
 * only way out). A state with no way out would fail here.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

const PLACEHOLDER = 'dbid:placeholder';
const states = walkReachableStates(PLACEHOLDER, Date.now() - 60_000);

describe('restoring each reachable state against the emulator', () => {
  it('walks every state of the machine', () => {
    expect(new Set(states.map((s) => s.value))).toEqual(new Set(['idle', 'fetching', 'applying', 'downloading', 'finishing', 'backoff', 'awaitingRelink']));
  });

  it('every restored state reaches idle with an exact mirror', async () => {
    const accounts: string[] = [];
    for (const [index, state] of states.entries()) {
      const accountId = `dbid:restore-${index}`;
      accounts.push(accountId);
      h.emulator.model.addAccount(accountId, { accessToken: `tok-${index}` });
      h.emulator.model.writeFile(accountId, `/posts/${index}.md`, `# State ${state.name}`);
      h.emulator.model.writeFile(accountId, '/notes.txt', 'hello');
      // Linked while no process runs (no actor is started), then "crashed" in this state.
      await h.engine.accounts.link(accountId, { accessToken: `tok-${index}` }, [], Date.now());
      const snapshot = JSON.parse(JSON.stringify(state.snapshot).replaceAll(PLACEHOLDER, accountId)) as unknown;
      await new ActorPersistence(h.redis).save(accountId, 1, snapshot, state.value, Date.now()); // unfenced: no owner yet
    }
    // Accounts awaiting a re-link are not resumed by a boot: the same credentials would be refused.
    const awaiting = accounts.filter((_, index) => states[index]!.value === 'awaitingRelink');
    expect(awaiting).toHaveLength(4);
    expect(await h.engine.boot()).toBe(states.length - awaiting.length);
    for (const accountId of awaiting) {
      expect(h.engine.host.actor(accountId)).toBeUndefined();
      await h.engine.link(accountId, { accessToken: `tok-${accounts.indexOf(accountId)}` });
    }
    for (const accountId of accounts) await h.waitForIdle(accountId, 20_000);
    for (const accountId of accounts) {
      expect(await readMirror(h.dataDir, accountId)).toEqual(expectedMirror(h.emulator, accountId));
      expect(await h.engine.entries.count(accountId)).toBe(2);
    }
    await waitUntil(async () => (await h.engine.status(accounts[0]!))?.lastError === null, 5_000, 'no error left');
  });
});

describe('a snapshot that cannot be restored', () => {
  it('leads to a fresh actor and a full resync of that account, never a crash', async () => {
    const cases: Record<string, string> = {
      'dbid:bad-state': JSON.stringify({ status: 'active', value: 'uploading', context: {}, children: {} }),
      'dbid:bad-json': '{not json',
    };
    for (const [accountId, snapshot] of Object.entries(cases)) {
      h.emulator.model.addAccount(accountId, { accessToken: `tok-${accountId}` });
      h.emulator.model.writeFile(accountId, '/kept.md', '# Kept');
      await h.linkAccount(accountId, { accessToken: `tok-${accountId}` });
      await h.waitForIdle(accountId);
      await h.engine.host.stop(accountId); // as if the process had died
      h.emulator.model.writeFile(accountId, '/later.md', '# Later');
      // A snapshot from some other version of the engine, and the mailbox saying work is waiting.
      await h.redis.hset(`mr:{${accountId}}:actor`, 'state', 'uploading', 'snapshot', snapshot);
      await h.redis.hset(`mr:{${accountId}}:mailbox`, 'status', 'running', 'dirty', '1');
    }
    const fullListings = Object.fromEntries(Object.keys(cases).map((id) => [id, h.emulator.stats.calls(id, 'files/list_folder')]));
    await h.engine.boot();
    for (const accountId of Object.keys(cases)) {
      await h.waitForIdle(accountId, 20_000);
      expect(await readMirror(h.dataDir, accountId)).toEqual(expectedMirror(h.emulator, accountId));
      // Not a continue from the saved cursor: a full re-list, reconciled against the mirror.
      expect(h.emulator.stats.calls(accountId, 'files/list_folder')).toBe(fullListings[accountId]! + 1);
    }
  });

  it('falls back to the full resync at the next start when asking for it failed (Redis gone for a moment)', async () => {
    const accountId = 'dbid:bad-state-redis-blip';
    h.emulator.model.addAccount(accountId, { accessToken: `tok-${accountId}` });
    h.emulator.model.writeFile(accountId, '/kept.md', '# Kept');
    await h.linkAccount(accountId, { accessToken: `tok-${accountId}` });
    await h.waitForIdle(accountId);
    await h.engine.host.stop(accountId);
    h.emulator.model.writeFile(accountId, '/later.md', '# Later');
    await h.redis.hset(`mr:{${accountId}}:actor`, 'state', 'uploading', 'snapshot', JSON.stringify({ status: 'active', value: 'uploading', context: {}, children: {} }));
    await h.redis.hset(`mr:{${accountId}}:mailbox`, 'status', 'running', 'dirty', '1');
    // The engine's own mailbox, failing its first resync request as a dropped connection would.
    const mailbox = (h.engine.host as unknown as { options: { mailbox: { requestResync(id: string): Promise<unknown> } } }).options.mailbox;
    const requestResync = mailbox.requestResync.bind(mailbox);
    let failures = 1;
    mailbox.requestResync = async (id) => {
      if (failures-- > 0) throw new Error('Connection is closed.');
      return requestResync(id);
    };
    const fullListings = h.emulator.stats.calls(accountId, 'files/list_folder');
    try {
      await expect(h.engine.host.send(accountId, { type: 'WEBHOOK' })).rejects.toThrow('Connection is closed.');
      expect(h.engine.host.actor(accountId)).toBeUndefined();
      expect(await h.redis.hget(`mr:{${accountId}}:actor`, 'state')).toBe('uploading'); // not written over
      // Stopped while it asks (an unlink at that moment): the stop gave the lease back, so no actor starts.
      mailbox.requestResync = async (id) => {
        await h.engine.host.stop(id);
        return requestResync(id);
      };
      await h.engine.host.send(accountId, { type: 'WEBHOOK' });
      expect(h.engine.host.actor(accountId)).toBeUndefined();
      expect(await h.redis.hget(`mr:{${accountId}}:actor`, 'state')).toBe('uploading');
      mailbox.requestResync = requestResync;
      await h.engine.host.send(accountId, { type: 'WEBHOOK' });
      await h.waitForIdle(accountId, 20_000);
    } finally {
      mailbox.requestResync = requestResync;
    }
    expect(h.emulator.stats.calls(accountId, 'files/list_folder')).toBe(fullListings + 1);
    expect(await readMirror(h.dataDir, accountId)).toEqual(expectedMirror(h.emulator, accountId));
  });
});
