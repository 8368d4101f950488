import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadFile, type files } from 'dropbox';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { contentHash } from '../../src/dropbox/content-hash.js';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { rejection, responseError, sdkFor } from './emulator-client.js';

/** In Node the SDK adds the body as a Buffer; its types don't mention it. */
type Downloaded = files.FileMetadata & { fileBinary: Buffer };

let emulator: RunningEmulator;
let accountId: string;
let counter = 0;
let token: string;

beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => emulator.close());
beforeEach(() => {
  counter += 1;
  accountId = `dbid:AAH_download_${counter}`;
  token = `download-token-${counter}`;
  emulator.model.addAccount(accountId, { accessToken: token });
  emulator.faults.clear();
});

describe('files/download through the SDK', () => {
  it('returns bytes and header-safe metadata without .tag, for non-ASCII names', async () => {
    const written = emulator.model.writeFile(accountId, '/Ünïcode/Ünïcode.txt', 'héllo wörld ✓', {
      clientModified: new Date('2020-01-02T03:04:05.678Z'),
    });
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const response = await dbx.filesDownload({ path: '/Ünïcode/Ünïcode.txt' });
    const result = response.result as Downloaded;
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    // The raw header is pure ASCII: non-ASCII goes as \uXXXX escapes.
    expect(response.headers.get('dropbox-api-result')).toMatch(/^[\x20-\x7e]+$/);
    expect(response.headers.get('dropbox-api-result')).toContain('\\u00dcn\\u00efcode.txt');
    expect(result).not.toHaveProperty('.tag');
    expect(result).toMatchObject({
      name: 'Ünïcode.txt',
      path_display: '/Ünïcode/Ünïcode.txt',
      path_lower: '/ünïcode/ünïcode.txt',
      id: written.id,
      rev: written.rev,
      size: Buffer.byteLength('héllo wörld ✓'),
      client_modified: '2020-01-02T03:04:05Z',
    });
    expect(Buffer.isBuffer(result.fileBinary)).toBe(true);
    expect(result.fileBinary.toString('utf8')).toBe('héllo wörld ✓');
    expect(result.content_hash).toBe(contentHash(result.fileBinary));
    expect(emulator.stats.downloads(accountId, '/ünïcode/ünïcode.txt')).toBe(1);
  });

  it('downloads an old revision by rev: and a file by id:', async () => {
    const first = emulator.model.writeFile(accountId, '/doc.txt', 'version one');
    const second = emulator.model.writeFile(accountId, '/doc.txt', 'version two!');
    const dbx = sdkFor(emulator.url, { accessToken: token });

    const old = (await dbx.filesDownload({ path: `rev:${first.rev}` })).result as Downloaded;
    expect(old.fileBinary.toString()).toBe('version one');
    expect(old.rev).toBe(first.rev);
    expect(old.content_hash).toBe(contentHash(old.fileBinary));

    const current = (await dbx.filesDownload({ path: second.id })).result as Downloaded;
    expect(current.fileBinary.toString()).toBe('version two!');
    expect(current.rev).toBe(second.rev);
  });

  it('answers a moved file\'s revision with the path the file has now, even when another file took its old path', async () => {
    const written = emulator.model.writeFile(accountId, '/drafts/post.md', 'moved post');
    emulator.model.move(accountId, '/drafts/post.md', '/posts/post.md');
    emulator.model.writeFile(accountId, '/drafts/post.md', 'a new draft at the old path');
    const dbx = sdkFor(emulator.url, { accessToken: token });

    const old = (await dbx.filesDownload({ path: `rev:${written.rev}` })).result as Downloaded;

    expect(old.fileBinary.toString()).toBe('moved post');
    expect(old.path_display).toBe('/posts/post.md');
  });

  it('accepts the argument in the arg query parameter too', async () => {
    emulator.model.writeFile(accountId, '/q.txt', 'query');
    const arg = encodeURIComponent(JSON.stringify({ path: '/q.txt' }));
    const response = await fetch(`${emulator.url}/2/files/download?arg=${arg}`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('query');
  });

  it('answers 409 path/not_found and path/not_file', async () => {
    emulator.model.mkdir(accountId, '/Folder');
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const missing = await responseError(dbx.filesDownload({ path: '/missing.txt' }));
    expect(missing.status).toBe(409);
    expect(missing.error.error).toEqual({ '.tag': 'path', path: { '.tag': 'not_found' } });
    expect(missing.error.error_summary).toMatch(/^path\/not_found\//);
    const folder = await responseError(dbx.filesDownload({ path: '/Folder' }));
    expect(folder.status).toBe(409);
    expect(folder.error.error.path['.tag']).toBe('not_file');
  });
});

describe('HTTP Range on files/download (dropbox-api.md 3.1: "HTTP Range (206 + Content-Range)"; 8.6)', () => {
  const bytes = Buffer.from('0123456789abcdefghij');

  async function rawDownload(path: string, range: string): Promise<Response> {
    return fetch(`${emulator.url}/2/files/download`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Dropbox-API-Arg': JSON.stringify({ path }), Range: range },
    });
  }

  it('answers a satisfiable range with 206, the part of the bytes and Content-Range bytes a-b/total', async () => {
    emulator.model.writeFile(accountId, '/r.bin', bytes);
    for (const [range, part, contentRange] of [
      ['bytes=2-5', '2345', 'bytes 2-5/20'],
      ['bytes=15-', 'fghij', 'bytes 15-19/20'],
      ['bytes=-3', 'hij', 'bytes 17-19/20'],
      ['bytes=18-99', 'ij', 'bytes 18-19/20'],
    ] as const) {
      const response = await rawDownload('/r.bin', range);
      expect(response.status, range).toBe(206);
      expect(response.headers.get('content-range'), range).toBe(contentRange);
      expect(JSON.parse(response.headers.get('dropbox-api-result')!)).toMatchObject({ size: 20 });
      expect(await response.text(), range).toBe(part);
    }
  });

  it('answers a range past the end with 416 and Content-Range bytes */total', async () => {
    emulator.model.writeFile(accountId, '/r.bin', bytes);
    const response = await rawDownload('/r.bin', 'bytes=20-');
    expect(response.status).toBe(416);
    expect(response.headers.get('content-range')).toBe('bytes */20');
  });

  it("lets the SDK's downloadFile fetch in parallel ranges and resume a .part file", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailroom-range-'));
    try {
      const written = emulator.model.writeFile(accountId, '/big.bin', Buffer.alloc(300_000, 'x').fill('y', 100_000));
      const dbx = sdkFor(emulator.url, { accessToken: token });
      const parallel = join(dir, 'parallel.bin');
      await downloadFile(dbx, '/big.bin', parallel, { parallelDownloads: 3, maxAttempts: 1 });
      expect(contentHash(await readFile(parallel))).toBe(written.content_hash);

      const resumed = join(dir, 'resumed.bin');
      await writeFile(`${resumed}.part`, Buffer.alloc(150_000, 'x').fill('y', 100_000));
      const result = await downloadFile(dbx, '/big.bin', resumed, { maxAttempts: 1 });
      expect(result.resumedFrom).toBe(150_000);
      expect(contentHash(await readFile(resumed))).toBe(written.content_hash);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('injected faults', () => {
  it('429 carries Retry-After and the JSON reason, and is recorded', async () => {
    emulator.model.writeFile(accountId, '/a.txt', 'a');
    emulator.faults.inject({ route: 'files/list_folder/continue', accountId, status: 429, retryAfterSeconds: 2 });
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const listing = await dbx.filesListFolder({ path: '', recursive: true });
    const before = Date.now();
    const error = await responseError(dbx.filesListFolderContinue({ cursor: listing.result.cursor }));
    expect(error.status).toBe(429);
    expect(error.headers.get('retry-after')).toBe('2');
    expect(error.error.error).toEqual({ reason: { '.tag': 'too_many_requests' }, retry_after: 2 });
    expect(emulator.faults.rateLimitsServed).toHaveLength(1);
    expect(emulator.faults.rateLimitsServed[0]).toMatchObject({ route: 'files/list_folder/continue', accountId, retryAfterSeconds: 2 });
    expect(emulator.faults.rateLimitsServed[0]!.at).toBeGreaterThanOrEqual(before);
    // Consumed: the next call succeeds.
    await expect(dbx.filesListFolderContinue({ cursor: listing.result.cursor })).resolves.toMatchObject({ status: 200 });
  });

  it('429 can come as plain text or with reason too_many_write_operations, always with Retry-After (dropbox-api.md 5.2)', async () => {
    emulator.model.writeFile(accountId, '/a.txt', 'a');
    const dbx = sdkFor(emulator.url, { accessToken: token });
    emulator.faults.inject({ route: 'files/download', accountId, status: 429, retryAfterSeconds: 3, body: 'Too many requests' });
    const text = await responseError(dbx.filesDownload({ path: '/a.txt' }));
    expect(text.status).toBe(429);
    expect(text.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(text.headers.get('retry-after')).toBe('3');
    expect(text.error).toBe('Too many requests');

    emulator.faults.inject({ route: 'files/download', accountId, status: 429, retryAfterSeconds: 4, reason: 'too_many_write_operations' });
    const writes = await responseError(dbx.filesDownload({ path: '/a.txt' }));
    expect(writes.headers.get('retry-after')).toBe('4');
    expect(writes.error).toEqual({ error_summary: 'too_many_write_operations/..', error: { reason: { '.tag': 'too_many_write_operations' }, retry_after: 4 } });
    expect(emulator.faults.rateLimitsServed.map((served) => served.retryAfterSeconds)).toEqual([3, 4]);
  });

  it('5xx answers with plain text, only for the matching path', async () => {
    emulator.model.writeFile(accountId, '/bad.txt', 'bad');
    emulator.model.writeFile(accountId, '/good.txt', 'good');
    emulator.faults.inject({ route: 'files/download', path: '/BAD.txt', status: 503, times: 2 });
    const dbx = sdkFor(emulator.url, { accessToken: token });
    await expect(dbx.filesDownload({ path: '/good.txt' })).resolves.toMatchObject({ status: 200 });
    for (let i = 0; i < 2; i++) {
      const error = await responseError(dbx.filesDownload({ path: '/bad.txt' }));
      expect(error.status).toBe(503);
      expect(typeof error.error).toBe('string');
    }
    await expect(dbx.filesDownload({ path: '/bad.txt' })).resolves.toMatchObject({ status: 200 });
  });

  it('a hanging call is ended by the client timeout and leaves no listing in flight', async () => {
    emulator.faults.inject({ route: 'files/list_folder', hang: true });
    const dbx = sdkFor(emulator.url, { accessToken: token }, 300);
    const started = Date.now();
    const error = await rejection(dbx.filesListFolder({ path: '', recursive: true }));
    expect((error as Error).name).toBe('TimeoutError');
    expect(Date.now() - started).toBeLessThan(3_000);
    // The server notices the closed socket asynchronously; wait for it with a deadline.
    const deadline = Date.now() + 2_000;
    while (emulator.stats.listingsInFlight(accountId) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(emulator.stats.listingsInFlight(accountId)).toBe(0);
    expect(emulator.stats.maxListingsInFlight(accountId)).toBe(1);
  });

  it('a corrupt download has the right length and a mismatching content hash', async () => {
    const written = emulator.model.writeFile(accountId, '/c.bin', new Uint8Array([1, 2, 3, 4, 5]));
    emulator.faults.inject({ route: 'files/download', accountId, corrupt: true });
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const result = (await dbx.filesDownload({ path: '/c.bin' })).result as Downloaded;
    expect(result.fileBinary).toHaveLength(5);
    expect(result.content_hash).toBe(written.content_hash);
    expect(contentHash(result.fileBinary)).not.toBe(result.content_hash);
  });

  it('a truncated download fails while reading the body', async () => {
    emulator.model.writeFile(accountId, '/t.bin', new Uint8Array(64 * 1024).fill(7));
    emulator.faults.inject({ route: 'files/download', truncate: true });
    const dbx = sdkFor(emulator.url, { accessToken: token });
    const error = await rejection(dbx.filesDownload({ path: '/t.bin' }));
    expect(error).toBeInstanceOf(TypeError);
    const retry = (await dbx.filesDownload({ path: '/t.bin' })).result as Downloaded;
    expect(retry.fileBinary).toHaveLength(64 * 1024);
  });

  it('close() ends a request that is still hanging', async () => {
    const own = await startEmulator();
    own.model.addAccount('dbid:AAH_hang', { accessToken: 'hang' });
    own.faults.inject({ route: 'files/list_folder', hang: true });
    const dbx = sdkFor(own.url, { accessToken: 'hang' }, 10_000);
    const pending = rejection(dbx.filesListFolder({ path: '' }));
    const deadline = Date.now() + 2_000;
    while (own.stats.listingsInFlight('dbid:AAH_hang') === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const started = Date.now();
    await own.close();
    expect(await pending).toBeInstanceOf(TypeError);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
