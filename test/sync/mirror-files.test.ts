import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { contentHash } from '../../src/dropbox/content-hash.js';
import { MirrorFiles } from '../../src/sync/download-queue.js';
import type { DownloadItem } from '../../src/sync/records.js';

/** The "already on disk?" check of the download step, on a real file system. */
const dir = mkdtempSync(join(tmpdir(), 'mailroom-mirror-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const itemFor = (name: string, content: string): DownloadItem => ({
  pathLower: `/${name.toLowerCase()}`, pathDisplay: `/${name}`, id: `id:${name}`, rev: '1', contentHash: contentHash(Buffer.from(content)),
  size: Buffer.byteLength(content), clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z',
});
const names = (count: number) => Array.from({ length: count }, (_, n) => `file-${n}.txt`);

describe('MirrorFiles', () => {
  it('finds the files whose bytes are already on disk in a folder with many queued files', async () => {
    const folder = join(dir, 'many');
    await mkdir(folder);
    await writeFile(join(folder, 'file-0.txt'), 'same');
    await writeFile(join(folder, 'file-1.txt'), 'stale');
    const files = new MirrorFiles(names(MirrorFiles.LIST_FROM).map((name) => join(folder, name)));
    expect(await files.sameBytes(join(folder, 'file-0.txt'), itemFor('file-0.txt', 'same'))).toBe(true);
    expect(await files.sameBytes(join(folder, 'file-1.txt'), itemFor('file-1.txt', 'fresh'))).toBe(false);
    expect(await files.sameBytes(join(folder, 'file-2.txt'), itemFor('file-2.txt', 'new'))).toBe(false);
  });

  it('answers no for every file of a folder that does not exist (a first sync)', async () => {
    const folder = join(dir, 'missing', 'deeper');
    const files = new MirrorFiles(names(MirrorFiles.LIST_FROM).map((name) => join(folder, name)));
    for (const name of names(MirrorFiles.LIST_FROM)) expect(await files.sameBytes(join(folder, name), itemFor(name, 'x'))).toBe(false);
  });

  it('lists such a folder once per step: a name that appears later in it is not looked at', async () => {
    // Nothing but the step itself writes into the mirror while it runs, one item per path; this
    // pins that a folder costs one listing, not a stat per queued file.
    const folder = join(dir, 'listed-once');
    await mkdir(folder);
    const files = new MirrorFiles(names(MirrorFiles.LIST_FROM).map((name) => join(folder, name)));
    expect(await files.sameBytes(join(folder, 'file-0.txt'), itemFor('file-0.txt', 'x'))).toBe(false);
    await writeFile(join(folder, 'file-1.txt'), 'x');
    expect(await files.sameBytes(join(folder, 'file-1.txt'), itemFor('file-1.txt', 'x'))).toBe(false);
    // The next step (a replay) lists again and finds it.
    const replay = new MirrorFiles(names(MirrorFiles.LIST_FROM).map((name) => join(folder, name)));
    expect(await replay.sameBytes(join(folder, 'file-1.txt'), itemFor('file-1.txt', 'x'))).toBe(true);
  });

  it('stats each file of a folder with few queued files, without listing the folder', async () => {
    const folder = join(dir, 'few');
    await mkdir(folder);
    const files = new MirrorFiles([join(folder, 'file-0.txt'), join(folder, 'file-1.txt')]);
    expect(await files.sameBytes(join(folder, 'file-0.txt'), itemFor('file-0.txt', 'x'))).toBe(false);
    await writeFile(join(folder, 'file-1.txt'), 'x');
    expect(await files.sameBytes(join(folder, 'file-1.txt'), itemFor('file-1.txt', 'x'))).toBe(true);
  });

  it('answers no for a folder in the place of the file, and for a file in the place of the folder', async () => {
    const folder = join(dir, 'shapes');
    await mkdir(join(folder, 'file-0.txt'), { recursive: true });
    await writeFile(join(dir, 'not-a-folder'), 'x');
    const files = new MirrorFiles([...names(MirrorFiles.LIST_FROM).map((name) => join(folder, name)), ...names(MirrorFiles.LIST_FROM).map((name) => join(dir, 'not-a-folder', name))]);
    expect(await files.sameBytes(join(folder, 'file-0.txt'), itemFor('file-0.txt', 'x'))).toBe(false);
    expect(await files.sameBytes(join(dir, 'not-a-folder', 'file-0.txt'), itemFor('file-0.txt', 'x'))).toBe(false);
  });
});
