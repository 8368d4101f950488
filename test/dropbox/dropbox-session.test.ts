import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DropboxSession } from '../../src/dropbox/dropbox-session.js';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { APP_KEY, APP_SECRET, waitUntil } from '../support/fixtures.js';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET });
});
afterAll(async () => {
  await emulator.close();
});

const session = (accessToken: string) =>
  new DropboxSession({ accessToken }, { hosts: { api: emulator.url, content: emulator.url }, callTimeoutMs: 5_000 });

describe('a Dropbox session', () => {
  it("gives a step's calls one client, and each step's calls end with that step alone", async () => {
    const account = 'dbid:session-clients';
    emulator.model.addAccount(account, { accessToken: 'token-session-clients' });
    emulator.model.writeFile(account, '/a.txt', 'a');
    const s = session('token-session-clients');
    const first = new AbortController();
    const second = new AbortController();
    const client = await s.client(first.signal);
    expect(await s.client(first.signal)).toBe(client); // not a new SDK client (and its 287 routes) per call
    const other = await s.client(second.signal);
    expect(other).not.toBe(client);

    // The first step is stopped while its call hangs: that call ends, the second step's does not.
    emulator.faults.inject({ route: 'files/list_folder', accountId: account, hang: true });
    const hanging = client.filesListFolder({ path: '' });
    await waitUntil(() => emulator.stats.listingsInFlight(account) === 1, 5_000, 'the call to reach Dropbox');
    first.abort();
    await expect(hanging).rejects.toThrow();
    const listed = await other.filesListFolder({ path: '' });
    expect(listed.result.entries.map((e) => e.name)).toEqual(['a.txt']);
    // A later call of the stopped step fails at once instead of reaching Dropbox.
    const served = emulator.stats.calls(account, 'files/list_folder');
    await expect(client.filesListFolder({ path: '' })).rejects.toThrow();
    expect(emulator.stats.calls(account, 'files/list_folder')).toBe(served);
  });
});
