import type { files } from 'dropbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DropboxModel } from '../../src/dropbox-emulator/model.js';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { responseError, sdkFor } from './emulator-client.js';

type Downloaded = files.FileMetadata & { fileBinary: Buffer };

const KiB = 1024;
const MiB = 1024 * KiB;

/** `size` bytes, all `fill`: each version of a file distinct from the one before. */
function bytesOf(size: number, fill: number): Uint8Array {
  return new Uint8Array(size).fill(fill % 256);
}

describe('revision bytes the emulator keeps', () => {
  it('a file saved 1,000 times keeps its current bytes and a bounded tail of old ones, not 1,000 copies', () => {
    const model = new DropboxModel({ supersededRevisionBytes: 8 * KiB });
    model.addAccount('dbid:AAH_rewrites', { accessToken: 't' });
    const revs: string[] = [];
    for (let i = 0; i < 1_000; i++) revs.push(model.writeFile('dbid:AAH_rewrites', '/draft.md', bytesOf(KiB, i)).rev);

    expect(model.contentBytes('dbid:AAH_rewrites')).toEqual({ current: KiB, superseded: 8 * KiB });
    // The newest old revisions stay downloadable (an engine that listed one just before a save asks for it)...
    expect(model.readFile('dbid:AAH_rewrites', `rev:${revs[998]}`).content).toEqual(bytesOf(KiB, 998));
    expect(model.readFile('dbid:AAH_rewrites', `rev:${revs[991]}`).content).toEqual(bytesOf(KiB, 991));
    // ...the oldest are gone, as a revision past Dropbox's history is, while their metadata stays.
    expect(() => model.readFile('dbid:AAH_rewrites', `rev:${revs[0]}`)).toThrow(expect.objectContaining({ code: 'not_found' }));
    expect(model.metadataOf('dbid:AAH_rewrites', `rev:${revs[0]}`)).toMatchObject({ rev: revs[0], size: KiB, path_lower: '/draft.md' });
  });

  it('by default a rewritten or deleted file keeps at most 16 MiB of old bytes per account', () => {
    const model = new DropboxModel();
    model.addAccount('dbid:AAH_default', { accessToken: 't' });
    for (let i = 0; i < 40; i++) model.writeFile('dbid:AAH_default', '/photo.jpg', bytesOf(MiB, i));
    for (let i = 0; i < 10; i++) {
      model.writeFile('dbid:AAH_default', `/tmp-${i}.bin`, bytesOf(MiB, i));
      model.remove('dbid:AAH_default', `/tmp-${i}.bin`);
    }
    expect(model.contentBytes('dbid:AAH_default')).toEqual({ current: MiB, superseded: 16 * MiB });
  });

  it('moves keep a file current: its bytes are not counted as old, and its revision still downloads', () => {
    const model = new DropboxModel({ supersededRevisionBytes: 0 });
    model.addAccount('dbid:AAH_moves', { accessToken: 't' });
    const written = model.writeFile('dbid:AAH_moves', '/a/post.md', 'moved around');
    model.move('dbid:AAH_moves', '/a', '/b');
    model.move('dbid:AAH_moves', '/b/post.md', '/c/Post.md');
    expect(model.contentBytes('dbid:AAH_moves')).toEqual({ current: 12, superseded: 0 });
    expect(new TextDecoder().decode(model.readFile('dbid:AAH_moves', `rev:${written.rev}`).content)).toBe('moved around');
    model.remove('dbid:AAH_moves', '/c');
    expect(model.contentBytes('dbid:AAH_moves')).toEqual({ current: 0, superseded: 0 });
  });
});

describe('an old revision through the SDK', () => {
  let emulator: RunningEmulator;
  beforeAll(async () => {
    emulator = await startEmulator({ supersededRevisionBytes: 16 });
    emulator.model.addAccount('dbid:AAH_sdk_revs', { accessToken: 'revs' });
  });
  afterAll(async () => emulator.close());

  it('a revision whose bytes are no longer kept answers 409 path/not_found, as a download of a file deleted since listing does', async () => {
    const first = emulator.model.writeFile('dbid:AAH_sdk_revs', '/doc.txt', 'version one, long enough to push it out');
    const second = emulator.model.writeFile('dbid:AAH_sdk_revs', '/doc.txt', 'version two');
    const third = emulator.model.writeFile('dbid:AAH_sdk_revs', '/doc.txt', 'version three');
    const dbx = sdkFor(emulator.url, { accessToken: 'revs' });

    const gone = await responseError(dbx.filesDownload({ path: `rev:${first.rev}` }));
    expect(gone.status).toBe(409);
    expect(gone.error.error).toEqual({ '.tag': 'path', path: { '.tag': 'not_found' } });
    expect(((await dbx.filesDownload({ path: `rev:${second.rev}` })).result as Downloaded).fileBinary.toString()).toBe('version two');
    expect(((await dbx.filesDownload({ path: `rev:${third.rev}` })).result as Downloaded).fileBinary.toString()).toBe('version three');
  });
});
