import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcessFixture, type ProcessFixture } from '../support/process-fixture.js';
import { readMirror, waitUntil } from '../support/sync-harness.js';

/**
 * `npm start` with only DROPBOX_API_URL set (an emulator or a Dropbox-compatible server serving
 * both the API and the downloads, as the library's `apiUrl` alone does): downloads must go there
 * too, not to the real content.dropboxapi.com with that server's tokens.
 */
let fixture: ProcessFixture;
beforeAll(async () => { fixture = await startProcessFixture('content-url'); });
afterAll(async () => { await fixture?.close(); });

describe('DROPBOX_API_URL without DROPBOX_CONTENT_URL', () => {
  it('downloads from the same server', async () => {
    const account = 'dbid:api-url-only';
    const { emulator } = fixture;
    emulator.model.addAccount(account, { accessToken: 'tok-api-only' });
    emulator.model.writeFile(account, '/posts/hello.md', '# Hello');
    const engine = await fixture.startEngine({ DROPBOX_CONTENT_URL: '', DROPBOX_TIMEOUT_MS: '2000' });
    expect((await engine.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: 'tok-api-only' }) })).status).toBe(200);

    // Either the file arrives or the sync fails (where the download went is in lastError).
    let status: { state: string; lastError: { kind: string; message: string } | null } | undefined;
    await waitUntil(async () => {
      status = (await (await engine.api(`/accounts/${account}`)).json()) as typeof status;
      return status!.lastError !== null || (await readMirror(fixture.dataDir, account)).has('/posts/hello.md');
    }, 30_000, 'the first sync to end or fail');
    expect(status!.lastError).toBeNull();
    expect((await readMirror(fixture.dataDir, account)).has('/posts/hello.md')).toBe(true);
    expect(emulator.stats.downloads(account)).toBeGreaterThanOrEqual(1);
  }, 45_000);
});
