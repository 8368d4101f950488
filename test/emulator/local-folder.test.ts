import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { once } from 'node:events';
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

    expect(await mirror.rescan()).toEqual({ written: [], created: [], removed: [], moved: [] });

    writeFileSync(join(dir, 'Posts', 'new.md'), 'new');
    rmSync(join(dir, '.hidden'));
    const second = await mirror.rescan();
    expect(second).toEqual({ written: ['/Posts/new.md'], created: [], removed: ['/.hidden'], moved: [] });

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

  it('does not follow symbolic links: nothing outside the folder is served, and a link to a parent does not repeat the tree', async () => {
    const own = mkdtempSync(join(tmpdir(), 'mailroom-local-links-'));
    const outside = mkdtempSync(join(tmpdir(), 'mailroom-outside-'));
    const account = 'dbid:AAH_links';
    emulator.model.addAccount(account, { accessToken: 'links' });
    try {
      writeFileSync(join(outside, 'secret.md'), 'not in the folder');
      writeFileSync(join(own, 'post.md'), '# Post');
      symlinkSync(outside, join(own, 'outside-dir'));
      symlinkSync(join(outside, 'secret.md'), join(own, 'outside-file.md'));
      symlinkSync('.', join(own, 'loop'));
      await new LocalFolderMirror({ model: emulator.model, accountId: account, dir: own, intervalMs: 0 }).rescan();
      expect(emulator.model.listTree(account).map((item) => item.pathDisplay)).toEqual(['/post.md']);
    } finally {
      rmSync(own, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('two local names Dropbox sees as one path (case, NFC/NFD) settle on one file instead of being written over each other on every scan', async () => {
    const own = mkdtempSync(join(tmpdir(), 'mailroom-local-collide-'));
    const account = 'dbid:AAH_collide';
    emulator.model.addAccount(account, { accessToken: 'collide' });
    try {
      writeFileSync(join(own, 'Readme.md'), '# one');
      writeFileSync(join(own, 'README.md'), '# two, longer');
      writeFileSync(join(own, 'caf\u00e9.md'), '# NFC');
      writeFileSync(join(own, 'cafe\u0301.md'), '# NFD, longer');
      const local = new LocalFolderMirror({ model: emulator.model, accountId: account, dir: own, intervalMs: 0 });
      await local.rescan();
      expect(emulator.model.listTree(account).map((item) => item.pathLower)).toEqual(['/caf\u00e9.md', '/readme.md']);
      expect(await local.rescan()).toEqual({ written: [], created: [], removed: [], moved: [] });
      expect(await local.rescan()).toEqual({ written: [], created: [], removed: [], moved: [] });
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  it('stopping ends a webhook being retried (an engine shutting down answers 503) instead of waiting out its retries', async () => {
    const own = mkdtempSync(join(tmpdir(), 'mailroom-local-stop-'));
    const account = 'dbid:AAH_stop';
    emulator.model.addAccount(account, { accessToken: 'stop' });
    let requests = 0;
    const refusing = createServer((_request, response) => {
      requests += 1;
      response.writeHead(503).end();
    }).listen(0, '127.0.0.1');
    await once(refusing, 'listening');
    const { port } = refusing.address() as { port: number };
    try {
      const local = new LocalFolderMirror({ model: emulator.model, accountId: account, dir: own, intervalMs: 0, webhook: { url: `http://127.0.0.1:${port}/`, appSecret: 's' } });
      writeFileSync(join(own, 'post.md'), '# Post');
      const pass = local.rescan();
      const deadline = Date.now() + 5_000;
      while (requests === 0) {
        if (Date.now() > deadline) throw new Error('no webhook was sent');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await local.stop();
      // Stopped before any retry was sent: waiting out the retries (15 s of them) would have sent them.
      expect(requests).toBe(1);
      expect((await pass).written).toEqual(['/post.md']);
    } finally {
      refusing.close();
      rmSync(own, { recursive: true, force: true });
    }
  });
});
