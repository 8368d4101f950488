import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { expectedMirror, readMirror, startHarness, waitUntil, type Harness, type MirrorFile } from '../support/sync-harness.js';

/**
 * Listings the engine must not trust: names no local file system (or no sane tool) should see,
 * and kinds that change under a path. The emulator's model only refuses "", "." and ".." segments,
 * so over-long names (> 255 bytes), control characters, backslashes and drive-letter names all
 * reach the engine, which must refuse them (and log it) while everything else syncs normally.
 */
const logLines: Record<string, unknown>[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});

let h: Harness;
beforeAll(async () => { h = await startHarness({ engine: { log: createLogger({ level: 'warn', destination: logSink }) } }); });
afterAll(async () => { await h.close(); });

const at = new Date('2024-08-08T08:08:08Z');

interface StatusBody { state: string; dirty: boolean; pending: number; lastError: unknown }

async function expectIdle(accountId: string): Promise<void> {
  const status = (await (await h.api(`/accounts/${accountId}`)).json()) as StatusBody;
  expect(status).toMatchObject({ state: 'idle', dirty: false, pending: 0, lastError: null });
}

/** The Dropbox tree minus the paths the engine must refuse. */
function expectedWithout(accountId: string, refused: (path: string) => boolean): Map<string, MirrorFile> {
  return new Map([...expectedMirror(h.emulator, accountId)].filter(([path]) => !refused(path)));
}

describe('names that are unsafe on disk', () => {
  it('are refused and logged while the rest syncs, and the account ends idle without an error', async () => {
    const account = 'dbid:faults-hostile-names';
    const model = h.emulator.model;
    const longName = `${'é'.repeat(130)}.md`; // 264 bytes in UTF-8, only 133 characters
    const longFolder = 'f'.repeat(256);
    const hostile = [
      `/posts/${longName}`,
      `/${longFolder}/inside.md`,
      '/posts/back\\slash.md',
      '/posts/bell\u0007.md',
      '/posts/nul\u0000byte.md',
      '/C:evil.md',
    ];
    model.addAccount(account, { accessToken: 'tok-hostile' });
    model.writeFile(account, '/posts/fine.md', '# Fine', { clientModified: at });
    model.writeFile(account, '/posts/also fine (1).md', '# Also fine', { clientModified: at });
    model.writeFile(account, `/posts/${'x'.repeat(252)}.md`, '# Exactly 255 bytes', { clientModified: at }); // the limit itself is fine
    for (const path of hostile) model.writeFile(account, path, '# Hostile', { clientModified: at });
    const isHostile = (path: string) => hostile.includes(path) || path.startsWith(`/${longFolder}`);

    expect((await h.linkAccount(account, { accessToken: 'tok-hostile' })).status).toBe(200);
    await h.waitForIdle(account);

    const mirror = await readMirror(h.dataDir, account);
    expect(mirror).toEqual(expectedWithout(account, isHostile));
    expect(mirror.size).toBe(3);
    expect((await h.engine.entries.list(account)).map((e) => e.path).sort()).toEqual([...mirror.keys()].sort());
    for (const path of hostile) expect(h.emulator.stats.downloads(account, path.toLowerCase())).toBe(0);
    await expectIdle(account);

    const refusals = logLines.filter((l) => l.accountId === account && l.msg === 'refused a Dropbox path');
    const refusedPaths = refusals.map((l) => l.pathDisplay ?? l.path);
    for (const path of hostile) expect(refusedPaths).toContain(path);
    expect(refusals.find((l) => l.pathDisplay === `/posts/${longName}`)?.reason).toMatch(/255 bytes/);

    // A later change still syncs, and a hostile name renamed to a safe one arrives.
    model.move(account, `/posts/${longName}`, '/posts/short.md');
    model.writeFile(account, '/posts/fine.md', '# Fine v2', { clientModified: at });
    await h.syncChanges(account);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedWithout(account, isHostile));
    expect((await readMirror(h.dataDir, account)).get('/posts/short.md')?.content).toBe('# Hostile');
    await expectIdle(account);
  });
});

describe('kinds that change under one path', () => {
  it('a file replaced by a folder of the same name, and back, converges (across syncs and within one batch)', async () => {
    const account = 'dbid:faults-hostile-kinds';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-kinds' });
    model.writeFile(account, '/Journal', 'a plain file', { clientModified: at });
    model.writeFile(account, '/keep.md', '# Keep', { clientModified: at });
    expect((await h.linkAccount(account, { accessToken: 'tok-kinds' })).status).toBe(200);
    await h.waitForIdle(account);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));

    // File -> folder (one sync).
    model.remove(account, '/Journal');
    model.writeFile(account, '/Journal/Day 1.md', '# Day 1', { clientModified: at });
    await h.syncChanges(account);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));
    expect((await h.engine.entries.list(account)).map((e) => e.path).sort()).toEqual(['/Journal/Day 1.md', '/keep.md']);
    await expectIdle(account);

    // Folder -> file (one sync): the folder's post stops being an entry.
    model.remove(account, '/Journal');
    model.writeFile(account, '/Journal', 'a plain file again', { clientModified: at });
    await h.syncChanges(account);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));
    expect((await h.engine.entries.list(account)).map((e) => e.path)).toEqual(['/keep.md']);
    await expectIdle(account);

    // Both swaps inside one batch, ending as a folder; then both again, ending as the same file bytes as before.
    model.remove(account, '/Journal');
    model.writeFile(account, '/journal/Day 2.md', '# Day 2', { clientModified: at });
    model.remove(account, '/journal');
    model.writeFile(account, '/Journal', 'short-lived', { clientModified: at });
    model.remove(account, '/Journal');
    model.writeFile(account, '/Journal/Day 3.md', '# Day 3', { clientModified: at });
    await h.syncChanges(account);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));
    expect((await h.engine.entries.list(account)).map((e) => e.path).sort()).toEqual(['/Journal/Day 3.md', '/keep.md']);

    model.remove(account, '/Journal');
    model.writeFile(account, '/Journal', 'a plain file again', { clientModified: at });
    model.remove(account, '/Journal');
    model.writeFile(account, '/Journal/x.md', '# X', { clientModified: at });
    model.remove(account, '/Journal');
    model.writeFile(account, '/Journal', 'a plain file again', { clientModified: at });
    await h.syncChanges(account);
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));
    expect((await h.engine.entries.list(account)).map((e) => e.path)).toEqual(['/keep.md']);
    await expectIdle(account);
  });

  it('two names differing only by case cannot coexist on Dropbox: the model keeps one file, and the mirror one', async () => {
    const account = 'dbid:faults-hostile-case';
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-case' });
    model.writeFile(account, '/Notes/Readme.md', '# First', { clientModified: at });
    model.writeFile(account, '/notes/README.md', '# Second', { clientModified: at }); // same file on Dropbox
    expect(model.listTree(account).filter((i) => i.kind === 'file')).toHaveLength(1);
    expect((await h.linkAccount(account, { accessToken: 'tok-case' })).status).toBe(200);
    await h.waitForIdle(account);
    const mirror = await readMirror(h.dataDir, account);
    expect(mirror).toEqual(expectedMirror(h.emulator, account));
    expect([...mirror.entries()].map(([p, f]) => [p, f.content])).toEqual([['/Notes/Readme.md', '# Second']]);
    await expectIdle(account);
  });
});
