import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { legacyUserId, webhookBody, webhookSignature } from '../../src/dropbox-emulator/webhook-sender.js';
import { APP_SECRET, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * While Redis is down a webhook cannot be recorded, so it must not be acknowledged: 503 makes
 * Dropbox retry. Readiness says the same. Once Redis is back (the engine's client reconnects on
 * its own) the same notification is accepted and the account syncs.
 */
let h: Harness;
const account = 'dbid:outage';

beforeAll(async () => {
  h = await startHarness();
  h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
  h.emulator.model.writeFile(account, '/first.md', '# first');
  expect((await h.linkAccount(account)).status).toBe(200);
  await h.waitForIdle(account);
});
afterAll(async () => { await h.close(); });

function postWebhook(): Promise<Response> {
  const body = webhookBody([account], [legacyUserId(account)]);
  return fetch(`${h.url}/webhooks/dropbox`, { method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) } });
}

describe('Redis refusing writes', () => {
  it('answers webhooks 503 and /readyz 503 while Redis is out of memory under noeviction, and 200 again once it takes writes', async () => {
    const admin = new Redis(h.redisServer.url);
    h.emulator.model.writeFile(account, '/while-full.md', '# written while Redis was full');
    try {
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      // Reachable and a primary, so PING and ROLE both pass: only a write tells.
      const ready = await fetch(`${h.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ ok: false, redis: 'refusing-writes', message: expect.stringMatching(/^Redis refuses writes: OOM command not allowed/) });
      expect((await postWebhook()).status).toBe(503); // not 500: Dropbox retries, and nothing was recorded
      const link = await h.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${account}` }) });
      expect(link.status).toBe(503);
      expect(await link.json()).toEqual({ error: 'unavailable', message: expect.stringMatching(/^Redis refuses writes/) });
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      admin.disconnect();
    }
    expect((await fetch(`${h.url}/readyz`)).status).toBe(200);
    expect((await postWebhook()).status).toBe(200);
    await h.waitForIdle(account);
    expect((await readMirror(h.dataDir, account)).get('/while-full.md')?.content).toBe('# written while Redis was full');
  });
});

describe('Redis down', () => {
  it('answers webhooks 503 and /readyz 503 while Redis is down, and 200 again once it is back', async () => {
    expect((await fetch(`${h.url}/readyz`)).status).toBe(200);
    h.emulator.model.writeFile(account, '/during-outage.md', '# written while Redis was down');

    await h.redisServer.kill();
    // The client notices the dead connection asynchronously; from then on every answer is 503.
    await waitUntil(async () => (await fetch(`${h.url}/readyz`)).status === 503, 5_000, '/readyz to report Redis down');
    const ready = await fetch(`${h.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ ok: false, redis: 'down', message: expect.stringMatching(/^no connection to Redis \(the client is (connecting|reconnecting|close|end)\b/) });
    const started = Date.now();
    const refused = await postWebhook();
    expect(refused.status).toBe(503); // not 200: Dropbox must retry this one
    expect(Date.now() - started).toBeLessThan(2_000); // fails fast, well inside Dropbox's 10 s
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200); // the process itself is fine
    const status = await h.api(`/accounts/${account}`);
    expect(status.status).toBe(503); // the account API says "retry", not "internal error"
    expect(await status.json()).toMatchObject({ error: 'unavailable' });

    await h.redisServer.restart();
    await waitUntil(async () => (await fetch(`${h.url}/readyz`)).status === 200, 10_000, '/readyz after the restart');
    // Dropbox's retry: accepted now, and the change made during the outage arrives.
    await waitUntil(async () => (await postWebhook()).status === 200, 10_000, 'the webhook to be accepted again');
    await h.waitForIdle(account);
    expect((await readMirror(h.dataDir, account)).get('/during-outage.md')?.content).toBe('# written while Redis was down');
  });
});
