import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeLeftoverTempFiles, TempFilesAhead, writeFileAtomically } from '../../src/sync/write-file.js';

/** The atomic write every downloaded file goes through, on a real file system. */
const dir = mkdtempSync(join(tmpdir(), 'mailroom-write-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mtime = new Date('2024-03-01T10:00:00Z');

describe('writeFileAtomically', () => {
  it('creates missing folders, and writes into existing ones', async () => {
    const first = join(dir, 'a', 'b', 'one.txt');
    expect(await writeFileAtomically(first, Buffer.from('one'), mtime)).toBe(true);
    expect(await writeFileAtomically(join(dir, 'a', 'b', 'two.txt'), Buffer.from('two'), mtime)).toBe(true);
    expect(await readFile(first, 'utf8')).toBe('one');
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['one.txt', 'two.txt']);
  });

  it('writes a name at the file system limit of 255 bytes (85 CJK characters in UTF-8)', async () => {
    const name = '字'.repeat(85);
    expect(Buffer.byteLength(name)).toBe(255);
    const target = join(dir, 'long-names', name);
    expect(await writeFileAtomically(target, Buffer.from('long'), mtime)).toBe(true);
    expect(await readdir(join(dir, 'long-names'))).toEqual([name]);
  });

  it('writes every byte of a large file, and an empty one', async () => {
    const large = Buffer.alloc(5 * 1024 * 1024 + 7, 'x');
    large.write('the end', large.length - 7);
    expect(await writeFileAtomically(join(dir, 'sizes', 'large.bin'), large, mtime)).toBe(true);
    expect((await readFile(join(dir, 'sizes', 'large.bin'))).equals(large)).toBe(true);
    expect(await writeFileAtomically(join(dir, 'sizes', 'empty.txt'), Buffer.alloc(0), mtime)).toBe(true);
    expect((await stat(join(dir, 'sizes', 'empty.txt'))).size).toBe(0);
  });

  it('has the mtime set before the check and the rename: the file never lands with another', async () => {
    const folder = join(dir, 'mtime');
    const target = join(folder, 'post.md');
    let tempTimes: number[] = [];
    await writeFileAtomically(target, Buffer.from('# Post'), mtime, async () => {
      const temps = (await readdir(folder)).filter((name) => name.endsWith('.mailroom-tmp'));
      tempTimes = await Promise.all(temps.map(async (name) => (await stat(join(folder, name))).mtimeMs));
      return true;
    });
    expect(tempTimes).toEqual([mtime.getTime()]);
    expect((await stat(target)).mtimeMs).toBe(mtime.getTime());
    expect((await stat(target)).atimeMs).toBe(mtime.getTime());
  });

  it('leaves the target untouched and no temp file when the check refuses', async () => {
    const folder = join(dir, 'refused');
    await mkdir(folder);
    const target = join(folder, 'post.md');
    await writeFile(target, 'newer');
    expect(await writeFileAtomically(target, Buffer.from('older'), mtime, async () => false)).toBe(false);
    expect(await readFile(target, 'utf8')).toBe('newer');
    expect(await readdir(folder)).toEqual(['post.md']);
  });

  it('removes its temp file when the check fails', async () => {
    const folder = join(dir, 'failed');
    await expect(writeFileAtomically(join(folder, 'post.md'), Buffer.from('x'), mtime, async () => {
      throw new Error('FENCED the account is owned by a newer lease (token 2)');
    })).rejects.toThrow('FENCED');
    expect(await readdir(folder)).toEqual([]);
  });

  it('fails, without creating anything, when a file stands where the folder should be', async () => {
    await writeFile(join(dir, 'plain'), 'a file');
    await expect(writeFileAtomically(join(dir, 'plain', 'post.md'), Buffer.from('x'), mtime)).rejects.toThrow(/ENOTDIR|EEXIST/);
    expect(await readFile(join(dir, 'plain'), 'utf8')).toBe('a file');
  });

  it('asks the check again before the rename when the fsync and the check outlasted the bound', async () => {
    const folder = join(dir, 'recheck');
    const target = join(folder, 'post.md');
    const answers = [true, false]; // allowed while the fsync ran; taken over by the time it ended
    let asked = 0;
    expect(await writeFileAtomically(target, Buffer.from('x'), mtime, async () => answers[asked++]!, { recheckAfterMs: 0 })).toBe(false);
    expect(asked).toBe(2);
    expect(await readdir(folder)).toEqual([]); // neither the file nor its temp file
  });

  it('asks the check once when the fsync and the check were quick', async () => {
    const target = join(dir, 'once', 'post.md');
    let asked = 0;
    expect(await writeFileAtomically(target, Buffer.from('x'), mtime, async () => ++asked === 1, { recheckAfterMs: Number.POSITIVE_INFINITY })).toBe(true);
    expect(asked).toBe(1);
    expect(await readFile(target, 'utf8')).toBe('x');
  });
});

describe('TempFilesAhead: temp files opened while the bytes download', () => {
  it('hands its file to the write, which fills and renames it: nothing else is left in the folder', async () => {
    const folder = join(dir, 'ahead');
    await mkdir(folder);
    const temps = new TempFilesAhead();
    const ahead = await temps.open(folder);
    expect(await readdir(folder)).toEqual([basename(ahead!.path)]);
    expect(temps.take(ahead!)).toBe(true);
    expect(await writeFileAtomically(join(folder, 'post.md'), Buffer.from('# Post'), mtime, async () => true, { ahead })).toBe(true);
    expect(await readdir(folder)).toEqual(['post.md']);
    expect(await readFile(join(folder, 'post.md'), 'utf8')).toBe('# Post');
    expect((await stat(join(folder, 'post.md'))).mtimeMs).toBe(mtime.getTime());
    await temps.discard(ahead); // handed over: not the registry's to remove any more
    expect(await readdir(folder)).toEqual(['post.md']);
  });

  it('removes the file when the check refuses the write', async () => {
    const folder = join(dir, 'ahead-refused');
    await mkdir(folder);
    const temps = new TempFilesAhead();
    const ahead = await temps.open(folder);
    temps.take(ahead!);
    expect(await writeFileAtomically(join(folder, 'post.md'), Buffer.from('x'), mtime, async () => false, { ahead })).toBe(false);
    expect(await readdir(folder)).toEqual([]);
  });

  it('opens nothing, and makes no folder, where the folder does not exist yet', async () => {
    expect(await new TempFilesAhead().open(join(dir, 'not-yet', 'deeper'))).toBeUndefined();
    expect(await readdir(dir)).not.toContain('not-yet');
  });

  it('removes a file on discard (the download failed), once however often asked', async () => {
    const folder = join(dir, 'ahead-discarded');
    await mkdir(folder);
    const temps = new TempFilesAhead();
    const ahead = await temps.open(folder);
    await Promise.all([temps.discard(ahead), temps.discard(ahead)]);
    expect(await readdir(folder)).toEqual([]);
    expect(temps.take(ahead!)).toBe(false); // no longer held: nothing left to hand a write
  });

  it('removes every file still held at shutdown, and any opened after it, but not one handed to a write', async () => {
    const folder = join(dir, 'ahead-shutdown');
    await mkdir(folder);
    const temps = new TempFilesAhead();
    const [held, handed] = await Promise.all([temps.open(folder), temps.open(folder)]);
    temps.take(handed!);
    const late = temps.open(folder); // its open completes after the shutdown began
    await temps.discardAll();
    expect(await late).toBeUndefined();
    expect(temps.take(held!)).toBe(false); // its download's write opens a file of its own
    expect(await readdir(folder)).toEqual([basename(handed!.path)]);
    expect(await writeFileAtomically(join(folder, 'post.md'), Buffer.from('x'), mtime, async () => true, { ahead: handed })).toBe(true);
    expect(await readdir(folder)).toEqual(['post.md']);
  });

  it('is refused, and removed, for a target in another folder', async () => {
    await mkdir(join(dir, 'here'));
    const temps = new TempFilesAhead();
    const ahead = await temps.open(join(dir, 'here'));
    temps.take(ahead!);
    await expect(writeFileAtomically(join(dir, 'elsewhere', 'post.md'), Buffer.from('x'), mtime, async () => true, { ahead })).rejects.toThrow(/cannot be renamed/);
    expect(await readdir(join(dir, 'here'))).toEqual([]);
  });
});

describe('removeLeftoverTempFiles', () => {
  it('removes the temp files a killed write left, and nothing else', async () => {
    const folder = join(dir, 'leftovers');
    await mkdir(folder);
    await writeFile(join(folder, '.0123456789ab.mailroom-tmp'), '');
    await writeFile(join(folder, '.ba9876543210.mailroom-tmp'), 'half a file');
    await writeFile(join(folder, 'post.md'), '# Post');
    await writeFile(join(folder, '.notes.mailroom-tmp'), 'a file of the user whose name looks alike');
    expect(await removeLeftoverTempFiles([folder, join(dir, 'no-such-folder')])).toBe(2);
    expect((await readdir(folder)).sort()).toEqual(['.notes.mailroom-tmp', 'post.md']);
  });
});
