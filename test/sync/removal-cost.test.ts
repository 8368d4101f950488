import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { scriptNameOfSha } from '../../src/redis/scripts.js';
import { CommandLog } from '../support/redis-monitor.js';
import { expectConverged, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * A removal drops its entries in one script. Dropping what is under a folder walks every entry of
 * the account inside Redis (entry-drop.lua), which blocks Redis meanwhile: a deleted file has
 * nothing under it, so a thousand deleted posts of an account with thousands cost a thousand
 * look-ups, not a thousand walks of every entry.
 */
let h: Harness;
let log: CommandLog;
beforeAll(async () => {
  h = await startHarness();
  log = await CommandLog.start(h.redis);
});
afterAll(async () => {
  log.stop();
  await h.close();
});

/** The entry-drop.lua runs among `sent`, each as its arguments after the keys and the fencing token ('path' or 'under' last). */
function entryDrops(sent: readonly string[][]): string[][] {
  return sent
    .filter((args) => {
      const command = args[0]?.toLowerCase();
      const sha = command === 'evalsha' ? args[1]! : command === 'eval' ? createHash('sha1').update(args[1]!).digest('hex') : '';
      return scriptNameOfSha(sha) === 'entryDrop';
    })
    .map((args) => args.slice(4 + Number(args[2])));
}

async function syncedWithPosts(account: string): Promise<void> {
  h.emulator.model.addAccount(account, { accessToken: `tok-${account}` });
  for (const name of ['a', 'b', 'c']) h.emulator.model.writeFile(account, `/posts/${name}.md`, `# ${name}`);
  await h.linkAccount(account, { accessToken: `tok-${account}` });
  await h.waitForIdle(account);
}

async function commandsDuring(account: string, change: () => void): Promise<string[][]> {
  return log.during(h.redis, async () => {
    change();
    await h.engine.notify([account]);
    await h.waitForIdle(account);
  });
}

describe('removing what Dropbox deleted', () => {
  it('drops a deleted post by its path, without walking every entry', async () => {
    const account = 'dbid:removal-file';
    await syncedWithPosts(account);
    const sent = await commandsDuring(account, () => h.emulator.model.remove(account, '/posts/a.md'));
    expect(entryDrops(sent)).toEqual([['/posts/a.md', 'path']]);
    expect((await h.engine.entries.list(account)).map((e) => e.path).sort()).toEqual(['/posts/b.md', '/posts/c.md']);
    await expectConverged(h, account);
  });

  it('drops everything under a deleted folder in one step', async () => {
    const account = 'dbid:removal-folder';
    await syncedWithPosts(account);
    const sent = await commandsDuring(account, () => h.emulator.model.remove(account, '/posts'));
    expect(entryDrops(sent)).toEqual([['/posts', 'under']]);
    expect(await h.engine.entries.list(account)).toEqual([]);
    await expectConverged(h, account);
  });

  it('drops a deleted file still waiting for its download by its path too', async () => {
    const account = 'dbid:removal-queued';
    await syncedWithPosts(account);
    // Listed and queued, not downloaded yet (the index has no record of it): then deleted.
    const queued = { pathLower: '/posts/q.md', pathDisplay: '/posts/q.md', id: 'id:q', rev: '0123456789a', contentHash: 'f'.repeat(64), size: 3, clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z' };
    await h.redis.hset(accountKeys(account).queue, queued.pathLower, JSON.stringify(queued));
    const sent = await commandsDuring(account, () => {
      h.emulator.model.writeFile(account, '/posts/q.md', 'q');
      h.emulator.model.remove(account, '/posts/q.md');
    });
    expect(entryDrops(sent)).toEqual([['/posts/q.md', 'path']]);
    await expectConverged(h, account);
  });
});
