import { describe, expect, it } from 'vitest';
import { withLocalCasing } from '../src/sync/local-casing.js';
import type { ListedEntry, LocalRecord } from '../src/sync/records.js';

const file = (pathDisplay: string): ListedEntry => ({
  tag: 'file', pathLower: pathDisplay.toLowerCase(), pathDisplay, name: pathDisplay.slice(pathDisplay.lastIndexOf('/') + 1),
  id: `id:${pathDisplay}`, rev: '1', contentHash: 'h', size: 1, clientModified: '', serverModified: '', isDownloadable: true,
});
const folder = (pathDisplay: string): ListedEntry => ({ tag: 'folder', pathLower: pathDisplay.toLowerCase(), pathDisplay, name: '', id: `id:${pathDisplay}` });
const localFolder = (pathDisplay: string): [string, LocalRecord] => [pathDisplay.toLowerCase(), { kind: 'folder', pathLower: pathDisplay.toLowerCase(), pathDisplay, id: 'id:f' }];

describe('withLocalCasing', () => {
  it('writes a child into the folder the mirror already has, whatever casing Dropbox gave its parent', () => {
    const files = new Map([localFolder('/Photos'), localFolder('/Photos/Trips')]);
    const out = withLocalCasing([file('/photos/TRIPS/Rome.jpg')], files);
    expect(out.map((e) => e.pathDisplay)).toEqual(['/Photos/Trips/Rome.jpg']);
  });

  it('uses the casing of a folder listed earlier in the same batch', () => {
    const out = withLocalCasing([folder('/Blog'), file('/blog/Post.md'), folder('/blog/Drafts'), file('/BLOG/drafts/x.md')], new Map());
    expect(out.map((e) => e.pathDisplay)).toEqual(['/Blog', '/Blog/Post.md', '/Blog/Drafts', '/Blog/Drafts/x.md']);
  });

  it('keeps the local casing of a folder Dropbox lists again with other casing (no case-only renames)', () => {
    const out = withLocalCasing([folder('/PHOTOS'), file('/PHOTOS/a.jpg')], new Map([localFolder('/Photos')]));
    expect(out.map((e) => e.pathDisplay)).toEqual(['/Photos', '/Photos/a.jpg']);
  });

  it('keeps the casing a folder got earlier in the batch when the batch lists it again (two pages of one batch)', () => {
    // Taken from Dropbox the second time, the folder would be made again beside the first on a
    // case-sensitive disk, and the files listed after it written there.
    const local = withLocalCasing([folder('/PHOTOS'), folder('/photos'), file('/photos/a.jpg')], new Map([localFolder('/Photos')]));
    expect(local.map((e) => e.pathDisplay)).toEqual(['/Photos', '/Photos', '/Photos/a.jpg']);
    const fresh = withLocalCasing([folder('/New'), file('/new/a.md'), folder('/NEW'), file('/NEW/b.md')], new Map());
    expect(fresh.map((e) => e.pathDisplay)).toEqual(['/New', '/New/a.md', '/New', '/New/b.md']);
  });

  it('keeps the file name casing from Dropbox and leaves unknown parents as listed', () => {
    const out = withLocalCasing([file('/Unknown/Parent/ReadMe.MD')], new Map());
    expect(out[0]!.pathDisplay).toBe('/Unknown/Parent/ReadMe.MD');
  });

  it('gives a folder deleted and listed again in the batch the name Dropbox lists, and what is under it (a case-only rename through a temporary name)', () => {
    const files = new Map([localFolder('/posts'), localFolder('/posts/Sub')]);
    const entries = [{ tag: 'deleted', pathLower: '/posts', pathDisplay: '/posts', name: 'posts' } as ListedEntry, folder('/Posts'), folder('/posts/SUB'), file('/posts/sub/a.md')];
    expect(withLocalCasing(entries, files).map((e) => e.pathDisplay)).toEqual(['/posts', '/Posts', '/Posts/SUB', '/Posts/SUB/a.md']);
  });

  it('forgets the casing the batch gave a folder once a folder above it is deleted (or replaced by a file), so one folder is made, not two', () => {
    const deleted = (pathDisplay: string) => ({ tag: 'deleted', pathLower: pathDisplay.toLowerCase(), pathDisplay, name: '' }) as ListedEntry;
    // Renamed /A to /a through a temporary name, over pages of one batch: /A/b was listed before.
    const renamed = [folder('/A'), folder('/A/b'), deleted('/a'), folder('/a'), folder('/a/b'), file('/a/b/x.md')];
    expect(withLocalCasing(renamed, new Map()).map((e) => e.pathDisplay)).toEqual(['/A', '/A/b', '/a', '/a', '/a/b', '/a/b/x.md']);
    // A file listed where the folder was deletes it and everything under it just the same.
    const replaced = [folder('/A'), folder('/A/b'), file('/a'), folder('/a'), folder('/a/b'), file('/a/b/x.md')];
    expect(withLocalCasing(replaced, new Map()).map((e) => e.pathDisplay)).toEqual(['/A', '/A/b', '/a', '/a', '/a/b', '/a/b/x.md']);
    // Nothing deleted in between: the batch's own casing still holds for what is under it.
    const listedTwice = [folder('/A'), folder('/A/b'), folder('/a/b'), file('/a/b/x.md')];
    expect(withLocalCasing(listedTwice, new Map()).map((e) => e.pathDisplay)).toEqual(['/A', '/A/b', '/A/b', '/A/b/x.md']);
  });
});
