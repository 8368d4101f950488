import { setMaxListeners } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DropboxSession } from '../../src/dropbox/dropbox-session.js';
import { APP_KEY, APP_SECRET, expectConverged, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';
import { callback, startTrip } from './oauth-client.js';

/**
 * Short-lived access tokens after an OAuth link. The emulator issues tokens valid for 301 s; the SDK
 * refreshes when a token is within 300 s of expiry, so one second after being issued a token is
 * "about to expire" and is replaced *before* the next call, which never sees a 401.
 */
const LIFETIME_S = 301;
let h: Harness;
const answers: { route: string; status: number }[] = [];
const realFetch = globalThis.fetch;
const at = new Date('2024-07-07T07:07:07Z');

beforeAll(async () => {
  h = await startHarness({ emulator: { accessTokenLifetimeSeconds: LIFETIME_S } });
  const origin = h.emulator.url;
  globalThis.fetch = async (input, init) => {
    const response = await realFetch(input, init);
    const url = input instanceof Request ? input.url : String(input);
    if (url.startsWith(origin)) answers.push({ route: new URL(url).pathname.replace(/^\/(2\/)?/, ''), status: response.status });
    return response;
  };
});
afterAll(async () => {
  globalThis.fetch = realFetch;
  await h.close();
});

const count = (route: string, status?: number) => answers.filter((a) => a.route === route && (status === undefined || a.status === status)).length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('refreshing an OAuth-linked account', () => {
  it('refreshes before expiry (no 401), and recovers with one refresh when Dropbox expires the token early', async () => {
    const account = 'dbid:oauth-refresh';
    h.emulator.model.addAccount(account, { accessToken: 'unused-refresh' });
    h.emulator.model.writeFile(account, '/posts/one.md', '# One', { clientModified: at });
    h.emulator.model.tokens.approveNextAuthorization(account);
    const trip = await startTrip(h);
    expect((await callback(trip.callbackUrl, trip.cookie)).status).toBe(200);
    await h.waitForIdle(account);
    expect(count('oauth2/token', 200)).toBe(1); // the code exchange only
    const linkedAt = Date.now();

    // Past the SDK's 5-minute margin: the next run refreshes first.
    await sleep(Math.max(0, linkedAt + 1_100 - Date.now()));
    answers.length = 0;
    h.emulator.model.writeFile(account, '/posts/two.md', '# Two', { clientModified: at });
    await h.engine.notify([account]);
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/two.md') > 0, 10_000, 'the download of two.md');
    await h.waitForIdle(account);
    expect(count('oauth2/token', 200)).toBeGreaterThanOrEqual(1);
    expect(answers.filter((a) => a.status === 401)).toEqual([]);
    expect(answers[0]?.route).toBe('oauth2/token'); // before any API call
    await expectConverged(h, account);

    // Dropbox expires the token early: at most one 401 (none if the SDK's margin already renewed the
    // 1-second token), then a refresh and the same call again. The long-lived case, with exactly one
    // 401, is test/faults/tokens.test.ts.
    answers.length = 0;
    h.emulator.model.expireAccessToken(account);
    h.emulator.model.writeFile(account, '/posts/three.md', '# Three', { clientModified: at });
    await h.engine.notify([account]);
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/three.md') > 0, 10_000, 'the download of three.md');
    await h.waitForIdle(account);
    expect(answers.filter((a) => a.status === 401).length).toBeLessThanOrEqual(1);
    expect(count('oauth2/token', 200)).toBeGreaterThanOrEqual(1);
    await expectConverged(h, account);
  });
});

describe('concurrent refreshes of one account', () => {
  function session(refreshToken: string): DropboxSession {
    return new DropboxSession({ refreshToken }, { appKey: APP_KEY, appSecret: APP_SECRET, hosts: { api: h.emulator.url, content: h.emulator.url }, callTimeoutMs: 5_000 });
  }

  it('many calls needing a token at once make one /oauth2/token request', async () => {
    const account = 'dbid:oauth-concurrent';
    h.emulator.model.addAccount(account, { accessToken: 'unused-concurrent', refreshToken: 'refresh-concurrent' });
    h.emulator.model.writeFile(account, '/a.txt', 'a');
    const s = session('refresh-concurrent');
    const before = h.emulator.stats.tokenRequests;
    const signal = new AbortController().signal;
    // As a step's signal is (step-actors.ts): twelve calls in flight on it at once is the point here.
    setMaxListeners(0, signal);
    const clients = await Promise.all(Array.from({ length: 12 }, () => s.client(signal)));
    expect(h.emulator.stats.tokenRequests).toBe(before + 1);
    // Every client works with the one token.
    const listings = await Promise.all(clients.map((dbx) => dbx.filesListFolder({ path: '' })));
    expect(listings.every((l) => l.result.entries.length === 1)).toBe(true);

    // Concurrent reactive refreshes (several calls hit a 401 at once) merge too.
    const between = h.emulator.stats.tokenRequests;
    await Promise.all(Array.from({ length: 8 }, () => s.refresh()));
    expect(h.emulator.stats.tokenRequests).toBe(between + 1);
  });
});
