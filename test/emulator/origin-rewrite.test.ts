import { getEventListeners, once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WHOLE_BODY_DEADLINE_BYTES } from '../../src/dropbox/call-deadline.js';
import { createDropboxFetch, rewriteDropboxUrl } from '../../src/dropbox/origin-rewrite.js';

const hosts = { api: 'http://127.0.0.1:1111', content: 'http://127.0.0.1:2222/' };

describe('rewriteDropboxUrl', () => {
  it('sends each Dropbox host to its base URL, keeping path and query', () => {
    expect(rewriteDropboxUrl('https://api.dropboxapi.com/2/files/list_folder', hosts)).toBe('http://127.0.0.1:1111/2/files/list_folder');
    expect(rewriteDropboxUrl('https://content.dropboxapi.com/2/files/download?arg=%7B%7D', hosts)).toBe(
      'http://127.0.0.1:2222/2/files/download?arg=%7B%7D',
    );
    expect(
      rewriteDropboxUrl('https://api.dropboxapi.com/oauth2/token?grant_type=refresh_token&refresh_token=r&client_id=k', hosts),
    ).toBe('http://127.0.0.1:1111/oauth2/token?grant_type=refresh_token&refresh_token=r&client_id=k');
  });

  it('falls back to the api host for notify', () => {
    expect(rewriteDropboxUrl('https://notify.dropboxapi.com/2/files/list_folder/longpoll', hosts)).toBe(
      'http://127.0.0.1:1111/2/files/list_folder/longpoll',
    );
    expect(rewriteDropboxUrl('https://notify.dropboxapi.com/2/x', { ...hosts, notify: 'http://n:3' })).toBe('http://n:3/2/x');
  });

  it('leaves real Dropbox alone when no host is configured, and other URLs always', () => {
    expect(rewriteDropboxUrl('https://api.dropboxapi.com/2/files/list_folder', {})).toBe('https://api.dropboxapi.com/2/files/list_folder');
    expect(rewriteDropboxUrl('https://content.dropboxapi.com/2/files/download', { api: 'http://a:1' })).toBe(
      'https://content.dropboxapi.com/2/files/download',
    );
    expect(rewriteDropboxUrl('https://www.dropbox.com/oauth2/authorize?x=1', hosts)).toBe('https://www.dropbox.com/oauth2/authorize?x=1');
    expect(rewriteDropboxUrl('not a url', hosts)).toBe('not a url');
  });
});

/** Over WHOLE_BODY_DEADLINE_BYTES, so its deadline is per chunk. */
const LARGE_BODY = Buffer.alloc(WHOLE_BODY_DEADLINE_BYTES + 1, 'x');

describe('createDropboxFetch', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/2/stall-headers') return; // never answers
      if (req.url === '/2/large') {
        res.writeHead(200, { 'Content-Length': String(LARGE_BODY.length) });
        res.end(LARGE_BODY);
        return;
      }
      if (req.url === '/2/stall-body') {
        res.writeHead(200, { 'Content-Length': '100' });
        res.write('only part');
        return; // the rest never comes
      }
      res.end(`${req.method} ${req.url}`);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    server.close();
  });

  it('reaches the rewritten origin', async () => {
    const dropboxFetch = createDropboxFetch({ api: base }, { timeoutMs: 2_000 });
    const response = await dropboxFetch('https://api.dropboxapi.com/2/ping?x=1', { method: 'POST' });
    expect(await response.text()).toBe('POST /2/ping?x=1');
  });

  it('times out a call whose headers never come', async () => {
    const dropboxFetch = createDropboxFetch({ api: base }, { timeoutMs: 200 });
    const started = Date.now();
    await expect(dropboxFetch('https://api.dropboxapi.com/2/stall-headers', { method: 'POST' })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('times out reading a body that stalls after the headers', async () => {
    const dropboxFetch = createDropboxFetch({ api: base }, { timeoutMs: 300 });
    const response = await dropboxFetch('https://api.dropboxapi.com/2/stall-body', { method: 'POST' });
    expect(response.status).toBe(200);
    await expect(response.arrayBuffer()).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('lets go of the caller\'s signal once the body is read, or once the call failed', async () => {
    // The step's signal lives as long as the step: a listener left per call would pile up over
    // thousands of downloads.
    const step = new AbortController();
    const dropboxFetch = createDropboxFetch({ api: base }, { timeoutMs: 2_000, signal: step.signal });
    const response = await dropboxFetch('https://api.dropboxapi.com/2/ping', { method: 'POST' });
    expect(getEventListeners(step.signal, 'abort')).toHaveLength(1); // the body can still stall
    await response.text();
    expect(getEventListeners(step.signal, 'abort')).toHaveLength(0);

    const failing = createDropboxFetch({ api: base }, { timeoutMs: 100, signal: step.signal });
    await expect(failing('https://api.dropboxapi.com/2/stall-headers', { method: 'POST' })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(getEventListeners(step.signal, 'abort')).toHaveLength(0);
  });

  it('lets go of the caller\'s signal once a large body read as a stream ends (the SDK\'s downloadFile reads no other way)', async () => {
    const step = new AbortController();
    const dropboxFetch = createDropboxFetch({ api: base }, { timeoutMs: 2_000, signal: step.signal });
    const response = await dropboxFetch('https://api.dropboxapi.com/2/large', { method: 'POST' });
    let received = 0;
    for await (const chunk of Readable.fromWeb(response.body as never)) received += (chunk as Buffer).length;
    expect(received).toBe(LARGE_BODY.length);
    expect(getEventListeners(step.signal, 'abort')).toHaveLength(0);

    // A reader that gives up half way (a pipeline whose file write failed) lets go of it too.
    const abandoned = await dropboxFetch('https://api.dropboxapi.com/2/large', { method: 'POST' });
    const reader = abandoned.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    expect(getEventListeners(step.signal, 'abort')).toHaveLength(1);
    await reader.cancel();
    expect(getEventListeners(step.signal, 'abort')).toHaveLength(0);
  });

  it('honours both the per-call and the global abort signal', async () => {
    const perCall = new AbortController();
    const dropboxFetch = createDropboxFetch({ api: base }, { timeoutMs: 10_000 });
    const pending = dropboxFetch('https://api.dropboxapi.com/2/stall-headers', { method: 'POST', signal: perCall.signal });
    perCall.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });

    const global = new AbortController();
    const globalFetch = createDropboxFetch({ api: base }, { timeoutMs: 10_000, signal: global.signal });
    const pendingGlobal = globalFetch('https://api.dropboxapi.com/2/stall-headers', { method: 'POST' });
    global.abort();
    await expect(pendingGlobal).rejects.toMatchObject({ name: 'AbortError' });
  });
});
