import { randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAM_FROM_BYTES } from '../../src/sync/download-queue.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * A file over STREAM_FROM_BYTES (a video in a blog's folder) is streamed to disk by the SDK's
 * downloadFile, never held whole in memory: one past Node's Buffer limit failed on every retry, and
 * a few at once could exhaust the process. It must land exactly as the small files do: whole, with
 * its client_modified, through a temp file that never stays behind, fenced before its rename.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

const at = new Date('2024-07-01T09:00:00Z');
const large = () => randomBytes(STREAM_FROM_BYTES + 4096);

async function tempNames(accountId: string): Promise<string[]> {
  const names = await readdir(mirrorFolder(h.dataDir, accountId), { recursive: true }).catch(() => [] as string[]);
  return names.map(String).filter((name) => name.includes('mailroom-tmp'));
}

async function expectOnDisk(accountId: string, path: string, bytes: Buffer): Promise<void> {
  const local = join(mirrorFolder(h.dataDir, accountId), ...path.split('/').filter(Boolean));
  expect((await readFile(local)).equals(bytes), `${path}'s bytes`).toBe(true);
  expect((await stat(local)).mtimeMs).toBe(at.getTime());
}

describe('a file larger than STREAM_FROM_BYTES', () => {
  it('lands whole with its client_modified, beside small files, and leaves no temp file; a post that large is set aside unread', async () => {
    const account = 'dbid:large-files';
    const video = large();
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/media/talk.mp4', video, { clientModified: at });
    h.emulator.model.writeFile(account, '/posts/small.md', '# Small', { clientModified: at });
    h.emulator.model.writeFile(account, '/posts/huge.md', Buffer.alloc(STREAM_FROM_BYTES + 1, 'a'), { clientModified: at });
    // Streamed means the bytes go to a file as they arrive: the SDK's `.part` file appears there.
    const media = join(mirrorFolder(h.dataDir, account), 'media');
    await mkdir(media, { recursive: true });
    const seen = new Set<string>();
    const watcher = watch(media, (_event, name) => { if (name) seen.add(String(name)); });
    try {
      expect((await h.linkAccount(account)).status).toBe(200);
      await h.waitForIdle(account);
    } finally {
      watcher.close();
    }
    expect([...seen].some((name) => /^\.[0-9a-f]{12}\.mailroom-tmp\.part$/.test(name))).toBe(true);

    await expectOnDisk(account, '/media/talk.mp4', video);
    expect(await tempNames(account)).toEqual([]);
    const status = await h.status(account);
    expect(status).toMatchObject({ state: 'idle', pending: 0, lastError: null, setAside: 1 });
    expect(status.setAsideFiles).toEqual([{ path: '/posts/huge.md', kind: 'post', message: expect.stringMatching(/^it is 8388609 bytes; a post is at most 4194304 \(the file is in the mirror/), at: expect.any(String) }]);
    expect((await h.engine.entries.list(account)).map((e) => e.path)).toEqual(['/posts/small.md']);

    // A new version replaces it in place, the same way.
    const edited = large();
    h.emulator.model.writeFile(account, '/media/talk.mp4', edited, { clientModified: at });
    await h.syncChanges(account);
    await expectOnDisk(account, '/media/talk.mp4', edited);
    expect(await tempNames(account)).toEqual([]);
  });

  it('cut off mid-body, is fetched again and lands whole; corrupt every time, never reaches the mirror and the step backs off', async () => {
    const account = 'dbid:large-faults';
    const video = large();
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/cut.mp4', video, { clientModified: at });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/cut.mp4', truncate: true });
    expect((await h.linkAccount(account)).status).toBe(200);
    await h.waitForIdle(account);
    await expectOnDisk(account, '/cut.mp4', video);
    expect(h.emulator.stats.downloads(account, '/cut.mp4')).toBe(2);

    h.emulator.model.writeFile(account, '/bad.mp4', large(), { clientModified: at });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/bad.mp4', corrupt: true, times: Infinity });
    await h.engine.notify([account]);
    await waitUntil(async () => (await h.status(account)).state === 'backoff', 20_000, 'the backoff');
    expect((await h.status(account)).lastError?.kind).toBe('content_mismatch');
    expect(h.emulator.stats.downloads(account, '/bad.mp4')).toBe(3);
    const local = join(mirrorFolder(h.dataDir, account), 'bad.mp4');
    await expect(stat(local)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await tempNames(account)).toEqual([]);
    h.emulator.faults.clear();
  });

  it('a part file a killed download left beside it is removed when it is downloaded again, even from a queue handed over by the apply step', async () => {
    const account = 'dbid:large-leftover';
    const video = large();
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/media/talk.mp4', video, { clientModified: at });
    // What a kill -9 leaves mid-stream: the SDK's .part file beside the target, possibly gigabytes.
    // The account's next download step may well be handed its queue (a restored step that failed
    // before it looked, then a new run), and a handed queue's folders are not listed for small files.
    await mkdir(join(mirrorFolder(h.dataDir, account), 'media'), { recursive: true });
    await writeFile(join(mirrorFolder(h.dataDir, account), 'media', '.0123456789ab.mailroom-tmp.part'), 'half a video');
    expect((await h.linkAccount(account)).status).toBe(200);
    await h.waitForIdle(account);
    await expectOnDisk(account, '/media/talk.mp4', video);
    expect(await tempNames(account)).toEqual([]);
  });
});
