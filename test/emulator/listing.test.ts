import type { files } from 'dropbox';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { rawRpc, responseError, sdkFor } from './emulator-client.js';

type Entry = files.ListFolderResult['entries'][number];

let emulator: RunningEmulator;
let accountCounter = 0;
let accountId: string;
let token: string;

beforeAll(async () => {
  emulator = await startEmulator({ pageLimit: 500 });
});
afterAll(async () => emulator.close());
beforeEach(() => {
  accountCounter += 1;
  accountId = `dbid:AAH_listing_${accountCounter}`;
  token = `token-${accountCounter}`;
  emulator.model.addAccount(accountId, { accessToken: token });
});

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** What a client holds after applying entries in order, by the spec's algorithm. */
function apply(state: Map<string, Entry>, entries: Entry[]): void {
  for (const entry of entries) {
    const key = entry.path_lower!;
    if (entry['.tag'] === 'deleted') {
      for (const path of [...state.keys()]) if (path === key || path.startsWith(key + '/')) state.delete(path);
    } else if (entry['.tag'] === 'file') {
      for (const path of [...state.keys()]) if (path.startsWith(key + '/')) state.delete(path);
      state.set(key, entry);
    } else {
      state.set(key, entry);
    }
  }
}

function serverState(): Map<string, { id: string; kind: string; rev?: string }> {
  return new Map(emulator.model.listTree(accountId).map((item) => [item.pathLower, { id: item.id, kind: item.kind, rev: item.rev }]));
}

function clientState(state: Map<string, Entry>): Map<string, { id: string; kind: string; rev?: string }> {
  return new Map(
    [...state].map(([path, entry]) => [
      path,
      { id: (entry as files.FileMetadataReference).id, kind: entry['.tag'], ...(entry['.tag'] === 'file' ? { rev: entry.rev } : {}) },
    ]),
  );
}

describe('list_folder through the SDK', () => {
  it('pages the initial listing by limit, parents first, and changes made while paging come via continue', async () => {
    for (let i = 0; i < 7; i++) emulator.model.writeFile(accountId, `/Docs/Sub/file-${i}.txt`, `content ${i}`);
    const dbx = sdkFor(emulator.url, { accessToken: token });

    const first = await dbx.filesListFolder({ path: '', recursive: true, limit: 3 });
    expect(first.status).toBe(200);
    expect(first.result.entries).toHaveLength(3);
    expect(first.result.has_more).toBe(true);
    expect(first.result.entries.map((e) => e.path_display)).toEqual(['/Docs', '/Docs/Sub', '/Docs/Sub/file-0.txt']);
    expect(first.result.entries[0]).toMatchObject({ '.tag': 'folder', name: 'Docs', path_lower: '/docs' });
    const file = first.result.entries[2] as files.FileMetadataReference;
    expect(file).toMatchObject({ '.tag': 'file', size: 9, is_downloadable: true });
    expect(file.rev).toMatch(/^[0-9a-f]{9,}$/);
    expect(file.id).toMatch(/^id:/);
    expect(file.content_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(file.client_modified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(file.server_modified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // A change in the middle of paging must not show up in the snapshot but after it.
    emulator.model.writeFile(accountId, '/late.txt', 'late');

    const state = new Map<string, Entry>();
    apply(state, first.result.entries);
    let cursor = first.result.cursor;
    let hasMore = first.result.has_more;
    const pageSizes: number[] = [];
    while (hasMore) {
      const page = await dbx.filesListFolderContinue({ cursor });
      pageSizes.push(page.result.entries.length);
      apply(state, page.result.entries);
      ({ cursor, has_more: hasMore } = page.result);
    }
    expect(pageSizes).toEqual([3, 3]);
    expect(state.has('/late.txt')).toBe(false);

    const after = await dbx.filesListFolderContinue({ cursor });
    expect(after.result.entries.map((e) => e.path_lower)).toEqual(['/late.txt']);
    apply(state, after.result.entries);
    expect(clientState(state)).toEqual(serverState());
  });

  it('reports writes, edits, folder deletion (one entry) and moves that keep ids', async () => {
    emulator.model.writeFile(accountId, '/A/one.txt', '1');
    emulator.model.writeFile(accountId, '/A/B/two.txt', '2');
    emulator.model.writeFile(accountId, '/Gone/x.txt', 'x');
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const listing = await dbx.filesListFolder({ path: '', recursive: true });
    expect(listing.result.has_more).toBe(false);
    const state = new Map<string, Entry>();
    apply(state, listing.result.entries);
    const idsBefore = new Map(emulator.model.listTree(accountId).map((item) => [item.pathLower, item.id]));

    const oldRev = (state.get('/a/one.txt') as files.FileMetadataReference).rev;
    emulator.model.writeFile(accountId, '/A/one.txt', '1 edited');
    emulator.model.writeFile(accountId, '/new.txt', 'new');
    emulator.model.remove(accountId, '/Gone');
    emulator.model.move(accountId, '/A', '/Moved/A2');

    const changes = await dbx.filesListFolderContinue({ cursor: listing.result.cursor });
    const entries = changes.result.entries;
    const deletions = entries.filter((e) => e['.tag'] === 'deleted');
    expect(deletions.map((e) => e.path_lower)).toEqual(['/gone', '/a']);
    for (const deleted of deletions) expect(deleted).not.toHaveProperty('id');

    const edited = entries.find((e) => e.path_lower === '/a/one.txt') as files.FileMetadataReference;
    expect(edited.rev).not.toBe(oldRev);
    expect(edited.id).toBe(idsBefore.get('/a/one.txt'));

    const movedFolder = entries.find((e) => e.path_lower === '/moved/a2') as files.FolderMetadataReference;
    expect(movedFolder.id).toBe(idsBefore.get('/a'));
    const movedFile = entries.find((e) => e.path_lower === '/moved/a2/b/two.txt') as files.FileMetadataReference;
    expect(movedFile.id).toBe(idsBefore.get('/a/b/two.txt'));
    expect(movedFile.path_display).toBe('/Moved/A2/B/two.txt');

    apply(state, entries);
    expect(clientState(state)).toEqual(serverState());
  });

  it('include_deleted adds what used to exist to the initial listing, and only then (dropbox-api.md 2.1)', async () => {
    emulator.model.writeFile(accountId, '/keep.txt', 'k');
    emulator.model.writeFile(accountId, '/Gone.txt', 'g');
    emulator.model.writeFile(accountId, '/Old/x.txt', 'x');
    emulator.model.writeFile(accountId, '/back.txt', 'b1');
    emulator.model.writeFile(accountId, '/From.txt', 'f');
    emulator.model.remove(accountId, '/Gone.txt');
    emulator.model.remove(accountId, '/Old');
    emulator.model.remove(accountId, '/back.txt');
    emulator.model.writeFile(accountId, '/back.txt', 'b2');
    emulator.model.move(accountId, '/From.txt', '/To.txt');
    const dbx = sdkFor(emulator.url, { accessToken: token });

    const plain = await dbx.filesListFolder({ path: '', recursive: true });
    expect(plain.result.entries.filter((e) => e['.tag'] === 'deleted')).toEqual([]);

    const withDeleted = await dbx.filesListFolder({ path: '', recursive: true, include_deleted: true });
    const deleted = withDeleted.result.entries.filter((e) => e['.tag'] === 'deleted');
    expect(deleted.map((e) => e.path_lower).sort()).toEqual(['/from.txt', '/gone.txt', '/old']);
    expect(deleted.find((e) => e.path_lower === '/gone.txt')).toEqual({ '.tag': 'deleted', name: 'Gone.txt', path_lower: '/gone.txt', path_display: '/Gone.txt' });
    // The live entries are the same either way, and applying the listing in order still gives the tree.
    expect(withDeleted.result.entries.filter((e) => e['.tag'] !== 'deleted')).toEqual(plain.result.entries);
    const state = new Map<string, Entry>();
    apply(state, withDeleted.result.entries);
    expect(clientState(state)).toEqual(serverState());
  });

  it('pages continue results and hands out a new cursor each page', async () => {
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const latest = await dbx.filesListFolderGetLatestCursor({ path: '', recursive: true, limit: 2 });
    for (let i = 0; i < 5; i++) emulator.model.writeFile(accountId, `/f${i}.txt`, `${i}`);
    const seen: string[] = [];
    let cursor = latest.result.cursor;
    for (;;) {
      const page = await dbx.filesListFolderContinue({ cursor });
      expect(page.result.entries.length).toBeLessThanOrEqual(2);
      expect(page.result.cursor).not.toBe(cursor);
      seen.push(...page.result.entries.map((e) => e.path_lower!));
      cursor = page.result.cursor;
      if (!page.result.has_more) break;
    }
    expect(seen).toEqual(['/f0.txt', '/f1.txt', '/f2.txt', '/f3.txt', '/f4.txt']);
  });

  it('answers 409 reset for a cursor of another emulator (the demo started again serves its folder afresh)', async () => {
    emulator.model.writeFile(accountId, '/a.txt', 'a');
    const listing = await sdkFor(emulator.url, { accessToken: token }).filesListFolder({ path: '', recursive: true });
    // The next run of the demo: a new emulator whose journal has nothing to do with the old one's.
    const next = await startEmulator();
    try {
      next.model.addAccount(accountId, { accessToken: token });
      next.model.writeFile(accountId, '/b.txt', 'b');
      const dbx = sdkFor(next.url, { accessToken: token });
      const error = await responseError(dbx.filesListFolderContinue({ cursor: listing.result.cursor }));
      expect(error.status).toBe(409);
      expect(error.error.error['.tag']).toBe('reset');
      // A cursor written before cursors named their emulator is reset too.
      const { epoch: _epoch, ...withoutEpoch } = JSON.parse(Buffer.from(listing.result.cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
      const older = Buffer.from(JSON.stringify(withoutEpoch)).toString('base64url');
      expect((await responseError(sdkFor(emulator.url, { accessToken: token }).filesListFolderContinue({ cursor: older }))).error.error['.tag']).toBe('reset');
    } finally {
      await next.close();
    }
  });

  it('answers 409 reset for every cursor issued before reset()', async () => {
    emulator.model.writeFile(accountId, '/a.txt', 'a');
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const listing = await dbx.filesListFolder({ path: '', recursive: true });
    emulator.model.reset(accountId);
    const error = await responseError(dbx.filesListFolderContinue({ cursor: listing.result.cursor }));
    expect(error.status).toBe(409);
    expect(error.error.error['.tag']).toBe('reset');
    expect(error.error.error_summary).toMatch(/^reset\//);

    const fresh = await dbx.filesListFolder({ path: '', recursive: true });
    expect(fresh.result.entries.map((e) => e.path_lower)).toEqual(['/a.txt']);
    await expect(dbx.filesListFolderContinue({ cursor: fresh.result.cursor })).resolves.toMatchObject({ status: 200 });
  });

  it('rejects bad input the way Dropbox does', async () => {
    const dbx = sdkFor(emulator.url, { accessToken: token });

    const garbage = await responseError(dbx.filesListFolderContinue({ cursor: 'not-a-cursor' }));
    expect(garbage.status).toBe(400);
    expect(typeof garbage.error).toBe('string');

    const root = await responseError(dbx.filesListFolder({ path: '/', recursive: true }));
    expect(root.status).toBe(400);
    expect(root.error).toContain('Error in call to API function "files/list_folder"');

    const missing = await responseError(dbx.filesListFolder({ path: '/nope', recursive: true }));
    expect(missing.status).toBe(409);
    expect(missing.error.error).toEqual({ '.tag': 'path', path: { '.tag': 'not_found' } });

    const unknown = await rawRpc(emulator.url, 'files/list_folder/continue', token, JSON.stringify({ cursor: 'x', x: 1 }));
    expect(unknown.status).toBe(400);
    expect(unknown.contentType).toMatch(/^text\/plain/);
    expect(unknown.text).toBe('Error in call to API function "files/list_folder/continue": request body: unknown field \'x\'');

    const limit = await rawRpc(emulator.url, 'files/list_folder', token, JSON.stringify({ path: '', limit: 0 }));
    expect(limit.status).toBe(400);
  });

  it('serves get_metadata with a tag, and rejects unknown or expired tokens with 401 JSON', async () => {
    emulator.model.writeFile(accountId, '/Folder/Ünïcode.txt', 'ü');
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const file = await dbx.filesGetMetadata({ path: '/folder/ünïcode.TXT' });
    expect(file.result).toMatchObject({ '.tag': 'file', name: 'Ünïcode.txt', path_display: '/Folder/Ünïcode.txt' });
    const byId = await dbx.filesGetMetadata({ path: (file.result as files.FileMetadataReference).id });
    expect(byId.result.path_lower).toBe('/folder/ünïcode.txt');
    const folder = await dbx.filesGetMetadata({ path: '/Folder' });
    expect(folder.result['.tag']).toBe('folder');

    const unknown = await responseError(sdkFor(emulator.url, { accessToken: 'nope' }).filesListFolder({ path: '' }));
    expect(unknown.status).toBe(401);
    expect(unknown.error.error['.tag']).toBe('invalid_access_token');

    emulator.model.expireAccessToken(accountId);
    const expired = await responseError(dbx.filesListFolder({ path: '' }));
    expect(expired.status).toBe(401);
    expect(expired.error.error['.tag']).toBe('expired_access_token');
  });

  it('longpoll (no auth, on the notify host) answers at once when changes wait, else when one arrives', async () => {
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const listing = await dbx.filesListFolder({ path: '', recursive: true });
    const waiting = dbx.filesListFolderLongpoll({ cursor: listing.result.cursor, timeout: 30 });
    // Change only once the longpoll is parked on the server, so the waiting path is what answers.
    await until(() => emulator.stats.calls(accountId, 'files/list_folder/longpoll') === 1);
    expect(emulator.model.journalPosition(accountId)).toBe(0);
    emulator.model.writeFile(accountId, '/poke.txt', 'poke');
    expect((await waiting).result).toEqual({ changes: true });
    const again = await dbx.filesListFolderLongpoll({ cursor: listing.result.cursor, timeout: 30 });
    expect(again.result.changes).toBe(true);

    emulator.model.reset(accountId);
    const reset = await responseError(dbx.filesListFolderLongpoll({ cursor: listing.result.cursor }));
    expect(reset.status).toBe(409);
    expect(reset.error.error['.tag']).toBe('reset');
  });

  it('counts calls per route and tracks listings in flight', async () => {
    const dbx = sdkFor(emulator.url, { accessToken: token });
    emulator.faults.setLatency(100, 'files/list_folder');
    try {
      await Promise.all([dbx.filesListFolder({ path: '', recursive: true }), dbx.filesListFolder({ path: '', recursive: true })]);
    } finally {
      emulator.faults.setLatency(0, 'files/list_folder');
    }
    expect(emulator.stats.calls(accountId, 'files/list_folder')).toBe(2);
    expect(emulator.stats.maxListingsInFlight(accountId)).toBe(2);
    expect(emulator.stats.listingsInFlight(accountId)).toBe(0);
    emulator.stats.resetStats();
    expect(emulator.stats.calls(accountId)).toBe(0);
    expect(emulator.stats.maxListingsInFlight(accountId)).toBe(0);
  });
});
