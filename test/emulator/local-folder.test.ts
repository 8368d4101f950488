import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFolderMirror } from '../../src/dropbox-emulator/local-folder.js';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { sdkFor } from './emulator-client.js';

const accountId = 'dbid:AAH_local';
let emulator: RunningEmulator;
let dir: string;
let mirror: LocalFolderMirror;

beforeAll(async () => {
  emulator = await startEmulator();
  emulator.model.addAccount(accountId, { accessToken: 'local' });
  dir = mkdtempSync(join(tmpdir(), 'mailroom-local-'));
  mirror = new LocalFolderMirror({ model: emulator.model, accountId, dir, intervalMs: 0 });
});
afterAll(async () => {
  await mirror.stop();
  await emulator.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('LocalFolderMirror', () => {
  it('serves a folder: initial scan, a new file, an edit and a deletion arrive through the API', async () => {
    mkdirSync(join(dir, 'Posts'));
    writeFileSync(join(dir, 'Posts', 'hello.md'), '# Hello');
    writeFileSync(join(dir, '.hidden'), 'dotfiles are served too');
    utimesSync(join(dir, 'Posts', 'hello.md'), new Date('2021-06-07T08:09:10Z'), new Date('2021-06-07T08:09:10Z'));
    const first = await mirror.rescan();
    expect(first.written.sort()).toEqual(['/.hidden', '/Posts/hello.md']);

    const dbx = sdkFor(emulator.url, { accessToken: 'local' });
    const listing = await dbx.filesListFolder({ path: '', recursive: true });
    expect(listing.result.entries.map((e) => e.path_display)).toEqual(['/.hidden', '/Posts', '/Posts/hello.md']);
    expect(listing.result.entries[2]).toMatchObject({ client_modified: '2021-06-07T08:09:10Z' });

    expect(await mirror.rescan()).toEqual({ written: [], created: [], removed: [] });

    writeFileSync(join(dir, 'Posts', 'new.md'), 'new');
    rmSync(join(dir, '.hidden'));
    const second = await mirror.rescan();
    expect(second).toEqual({ written: ['/Posts/new.md'], created: [], removed: ['/.hidden'] });

    const changes = await dbx.filesListFolderContinue({ cursor: listing.result.cursor });
    expect(changes.result.entries.map((e) => [e['.tag'], e.path_display])).toEqual([
      ['file', '/Posts/new.md'],
      ['deleted', '/.hidden'],
    ]);

    rmSync(join(dir, 'Posts'), { recursive: true });
    const third = await mirror.rescan();
    expect(third.removed).toEqual(['/Posts']);
    expect(emulator.model.listTree(accountId)).toEqual([]);
  });

  it('polls on its own when started with an interval', async () => {
    const polling = new LocalFolderMirror({ model: emulator.model, accountId, dir, intervalMs: 20 }).start();
    try {
      writeFileSync(join(dir, 'polled.txt'), 'found by the timer');
      const deadline = Date.now() + 2_000;
      while (!emulator.model.listTree(accountId).some((item) => item.pathLower === '/polled.txt')) {
        if (Date.now() > deadline) throw new Error('the mirror never picked up polled.txt');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } finally {
      await polling.stop();
    }
  });
});
