import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Handover } from '../../src/engine/handover.js';
import { accountKeys } from '../../src/redis/keys.js';
import type { DownloadItem } from '../../src/sync/records.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { CommandLog, countOf } from '../support/redis-monitor.js';
import { expectConverged, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

const item = (pathLower: string): DownloadItem => ({
  pathLower, pathDisplay: pathLower, id: `id:${pathLower}`, rev: 'r1', contentHash: 'h'.repeat(64), size: 1,
  clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z',
});

describe('what a step hands the next one', () => {
  it('is taken once, and only under the lease token it was given with', () => {
    const handover = new Handover<DownloadItem[]>();
    handover.give('a', '7', [item('/x.md')]);
    expect(handover.take('a', '8')).toBeUndefined(); // another lease: read Redis
    expect(handover.take('a', '7')).toBeUndefined(); // the wrong token took it away
    handover.give('a', '7', [item('/x.md')]);
    expect(handover.take('a', '7')).toEqual([item('/x.md')]);
    expect(handover.take('a', '7')).toBeUndefined(); // a retried step reads Redis
    handover.give('b', '1', [item('/y.md')]);
    handover.forget('b'); // its actor left memory
    expect(handover.take('b', '1')).toBeUndefined();
  });
});

let h: Harness;
let log: CommandLog;
beforeAll(async () => {
  h = await startHarness({ engine: { retryBaseDelayMs: 10, maxAttemptsPerCall: 1 } });
  log = await CommandLog.start(h.redis);
});
afterAll(async () => {
  log.stop();
  await h.close();
});

/** Runs `change`, then waits for the account to sync it; the Redis commands sent meanwhile. */
async function commandsDuring(account: string, change: () => void): Promise<string[][]> {
  await h.waitForIdle(account);
  return log.during(h.redis, async () => {
    change();
    await h.engine.notify([account]);
    await h.waitForIdle(account);
  });
}

/** An account with one post in Dropbox, linked (`beforeLink` runs just before); its first sync has started. */
async function linkWithOnePost(account: string, beforeLink: () => void = () => {}): Promise<void> {
  h.emulator.model.addAccount(account, { accessToken: `tok-${account}` });
  h.emulator.model.writeFile(account, '/posts/a.md', '# A');
  beforeLink();
  await h.linkAccount(account, { accessToken: `tok-${account}` });
}

const readsOfQueue = (sent: string[][], account: string) => countOf(sent, 'hgetall', accountKeys(account).queue);
/** apply-load.lua's own calls: the only script whose first key is the changes list (the fenced ones start with the mailbox). */
const applyLoads = (sent: string[][], account: string) =>
  sent.filter((args) => ['evalsha', 'eval'].includes(args[0]!.toLowerCase()) && args[3] === accountKeys(account).changes).length;

describe('a run', () => {
  it('applies and downloads a changed file without reading back what the listing saved or the queue the commit wrote', async () => {
    const account = 'dbid:handover-run';
    await linkWithOnePost(account);

    const sent = await commandsDuring(account, () => h.emulator.model.writeFile(account, '/posts/b.md', '# B'));

    expect(applyLoads(sent, account)).toBe(0);
    expect(readsOfQueue(sent, account)).toBe(0);
    await expectConverged(h, account);
  });

  it('lists once more for a webhook that arrives while the run downloads, with everything handed over', async () => {
    const account = 'dbid:handover-listing-again';
    await linkWithOnePost(account);
    await h.waitForIdle(account);
    const listings = () => h.emulator.stats.calls(account, 'files/list_folder/continue');
    const downloads = () => h.emulator.stats.calls(account, 'files/download');
    const [listedBefore, downloadedBefore] = [listings(), downloads()];
    h.emulator.faults.setLatency(300, 'files/download');
    try {
      h.emulator.model.writeFile(account, '/posts/b.md', '# B');
      expect(await h.engine.notify([account])).toEqual({ [account]: 'wake' });
      await waitUntil(() => downloads() > downloadedBefore, 5_000, 'the run to be downloading b.md');
      h.emulator.model.writeFile(account, '/posts/c.md', '# C');
      expect(await h.engine.notify([account])).toEqual({ [account]: 'running' });
      await h.waitForIdle(account);
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    expect(listings() - listedBefore).toBe(2);
    await expectConverged(h, account);
  });

  it('hands a retried download step the queue from the listing that goes before it', async () => {
    const account = 'dbid:handover-retry';
    await linkWithOnePost(account);
    const listings = () => h.emulator.stats.calls(account, 'files/list_folder/continue');
    const listedBefore = listings();

    const sent = await commandsDuring(account, () => {
      h.emulator.model.writeFile(account, '/posts/b.md', '# B');
      h.emulator.faults.inject({ route: 'files/download', accountId: account, status: 503 });
    });

    // The run's listing, and the one before the retry (machines/account.machine.ts), whose apply
    // step hands the queue on as the first one did: the queue is never read back.
    expect(listings() - listedBefore).toBe(2);
    expect(readsOfQueue(sent, account)).toBe(0);
    expect(h.emulator.stats.downloads(account, '/posts/b.md')).toBe(2);
    await expectConverged(h, account);
  });

  it('downloads a file the index never had without looking at the disk, unless it reads the queue back', async () => {
    // A file with the listed bytes at a path the index does not know: what a crash between a
    // download's rename and its record leaves. Looking at the disk finds it and saves the download;
    // a path the apply step hands over as new is downloaded without a look.
    const account = 'dbid:handover-new-path';
    await linkWithOnePost(account);
    const leaveOnDisk = (name: string, content: string) => {
      mkdirSync(join(mirrorFolder(h.dataDir, account), 'posts'), { recursive: true });
      writeFileSync(join(mirrorFolder(h.dataDir, account), 'posts', name), content);
    };

    await commandsDuring(account, () => {
      leaveOnDisk('b.md', '# B');
      h.emulator.model.writeFile(account, '/posts/b.md', '# B');
    });
    expect(h.emulator.stats.downloads(account, '/posts/b.md')).toBe(1);

    // The same, with the first download attempt failing: the retried step gets the queue from the
    // listing before it, which queued nothing new, so no path is known to be new: it looks at the
    // disk and finds the file.
    await commandsDuring(account, () => {
      leaveOnDisk('c.md', '# C');
      h.emulator.model.writeFile(account, '/posts/c.md', '# C');
      h.emulator.faults.inject({ route: 'files/download', accountId: account, status: 503 });
    });
    expect(h.emulator.stats.downloads(account, '/posts/c.md')).toBe(1); // the failed attempt only
    await expectConverged(h, account);
  });

  it('looks at the disk for every file of a full listing: the mirror may hold files its index forgot', async () => {
    // An account linked again after an unlink that kept its mirror: the first listing is a full
    // one and the index is empty, so "not in the index" says nothing about the disk.
    const account = 'dbid:handover-full-listing';
    await linkWithOnePost(account, () => {
      mkdirSync(join(mirrorFolder(h.dataDir, account), 'posts'), { recursive: true });
      writeFileSync(join(mirrorFolder(h.dataDir, account), 'posts', 'a.md'), '# A');
    });
    await h.waitForIdle(account);
    expect(h.emulator.stats.downloads(account, '/posts/a.md')).toBe(0);
    await expectConverged(h, account);
  });
});
