import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNAPSHOT_CARRY_WINDOW_MS } from '../../src/engine/account-host.js';
import { accountKeys } from '../../src/redis/keys.js';
import { scriptNameOfSha } from '../../src/redis/scripts.js';
import { CommandLog } from '../support/redis-monitor.js';
import { startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

let h: Harness;
let log: CommandLog;
beforeAll(async () => {
  h = await startHarness({ engine: { retryBaseDelayMs: 10 }, dropboxCallTimeoutMs: 1_000 });
  log = await CommandLog.start(h.redis);
});
afterAll(async () => {
  log.stop();
  await h.close();
});

/**
 * The actor snapshots the commands wrote, in order, each with the script that wrote it: a fenced
 * script's keys start with the account's mailbox and actor hash, and its arguments with the token
 * and the carried snapshot's version ('' for none), time, state, … (FENCE_PRELUDE in scripts.ts).
 */
function snapshotsWritten(sent: readonly string[][], account: string): { state: string; by: string }[] {
  const k = accountKeys(account);
  const written: { state: string; by: string }[] = [];
  for (const args of sent) {
    if (args[0]?.toLowerCase() !== 'evalsha') continue;
    const keyCount = Number(args[2]);
    const keys = args.slice(3, 3 + keyCount);
    if (keys[0] !== k.mailbox || keys[1] !== k.actor) continue;
    const [, version, , state] = args.slice(3 + keyCount);
    if (version) written.push({ state: state!, by: scriptNameOfSha(args[1]!) ?? args[1]! });
  }
  return written;
}

async function linkedAndIdle(account: string): Promise<void> {
  h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
  h.emulator.model.writeFile(account, '/posts/a.md', '# A');
  await h.linkAccount(account);
  await h.waitForIdle(account);
  await h.engine.host.flush();
}

describe('persisting the actor after every transition', () => {
  it('writes every state of a run, most of them with the scripts the steps send anyway', async () => {
    const account = 'dbid:carry-run';
    await linkedAndIdle(account);

    const sent = await log.during(h.redis, async () => {
      h.emulator.model.writeFile(account, '/posts/b.md', '# B');
      await h.engine.notify([account]);
      await h.waitForIdle(account);
      await h.engine.host.flush();
    });

    const written = snapshotsWritten(sent, account);
    expect(written.map((w) => w.state)).toEqual(['fetching', 'applying', 'downloading', 'finishing', 'idle']);
    // A step's first script leaves in the same tick as its state's snapshot: it carries it.
    expect(written.find((w) => w.state === 'fetching')!.by).toBe('listingBegin');
    expect(written.find((w) => w.state === 'finishing')!.by).toBe('runFinish');
    // Nothing follows `idle`: it is written by itself.
    expect(written.at(-1)!.by).toBe('actorSave');
    expect((await h.engine.persistence.load(account))?.state).toBe('idle');
  });

  it('writes a snapshot by itself when no script of the account comes to carry it', async () => {
    const account = 'dbid:carry-alone';
    await linkedAndIdle(account);
    // The download hangs, so the download step sends no script until the call's deadline.
    h.emulator.faults.inject({ route: 'files/download', accountId: account, hang: true });
    h.emulator.model.writeFile(account, '/posts/b.md', '# B');
    await h.engine.notify([account]);
    await waitUntil(() => String(h.engine.host.actor(account)?.getSnapshot().value) === 'downloading', 5_000, 'the download step');
    const entered = Date.now();
    await waitUntil(async () => (await h.engine.persistence.load(account))?.state === 'downloading', 5_000, 'the downloading snapshot in Redis');
    expect(Date.now() - entered).toBeLessThan(1_000); // the download's deadline is 1 s: no script carried it
    expect(String(h.engine.host.actor(account)?.getSnapshot().value)).toBe('downloading');
    expect(SNAPSHOT_CARRY_WINDOW_MS).toBeLessThan(1_000);
    await h.waitForIdle(account);
  });
});
