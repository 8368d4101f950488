import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { webhookBody, webhookSignature } from '../../src/dropbox-emulator/webhook-sender.js';
import { APP_SECRET, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * An error logged whole must not carry a secret that travelled with it: ioredis hangs the command
 * and all its arguments on every error reply (`err.command.args`), and pino's default `err`
 * serializer copies every enumerable property of an error into the log line.
 */
let h: Harness;
const lines: string[] = [];
beforeAll(async () => { h = await startHarness({ logLines: lines }); });
afterAll(async () => { await h.close(); });

type Record = { msg?: string; accountId?: string; path?: string; err?: { message?: string } };

/**
 * Links `accountId` while Redis answers the link's script with an error. Any error reply stands
 * for it (a script bug, an ACL without scripting, a key of the wrong type left by hand): here the
 * mailbox key holds a string, so the script's HSET fails. Answers the 'request failed' lines.
 */
async function failedLink(accountId: string, accessToken: string): Promise<Record[]> {
  await h.redis.set(accountKeys(accountId).mailbox, 'not a hash');
  h.emulator.model.addAccount(accountId, { accessToken });
  const response = await h.api(`/accounts/${accountId}`, { method: 'PUT', body: JSON.stringify({ accessToken }) });
  expect(response.status).toBe(500);
  expect(await response.text()).not.toContain(accessToken);
  return lines.map((line) => JSON.parse(line) as Record).filter((r) => r.msg === 'request failed' && r.path?.includes(accountId));
}

describe('errors in the logs', () => {
  it('a Redis error reply while linking logs the failure, never the credentials sent with the command', async () => {
    const failed = await failedLink('dbid:secret-errors-link', 'sl.link-access-token-SECRET-0123456789abcdef');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.err?.message).toMatch(/WRONGTYPE/);
    for (const line of lines) expect(line).not.toContain('SECRET');
  });

  it('a request about an account that fails is logged with its accountId', async () => {
    const accountId = 'dbid:secret-errors-id';
    const failed = await failedLink(accountId, 'sl.another-access-token-0123456789abcdef');
    expect(failed).toHaveLength(1);
    // Found when the operator searches the logs for the account, as every other line about it.
    expect(failed[0]!.accountId).toBe(accountId);
  });

  it("a Dropbox 400 that quotes the request's Authorization header leaves the token out of lastError and the logs", async () => {
    // Dropbox answers a malformed Authorization header with a plain-text 400 quoting it; the
    // engine keeps the start of such an answer as the account's lastError (status API, events, logs).
    const accountId = 'dbid:secret-errors-400';
    const token = 'tok-400-SECRET-0123456789abcdef';
    h.emulator.model.addAccount(accountId, { accessToken: token });
    h.emulator.model.writeFile(accountId, '/posts/a.md', '# A');
    h.emulator.faults.inject({
      route: 'files/download', accountId, status: 400, times: 1000,
      body: `Error in call to API function "files/download": Bad HTTP "Authorization" header: "Bearer ${token}". Expecting the format "Bearer <oauth2-access-token>".`,
    });
    await h.linkAccount(accountId, { accessToken: token });
    await waitUntil(async () => (await h.status(accountId)).lastError !== null, 10_000, 'the failed download');
    const { lastError } = await h.status(accountId);
    expect(lastError?.message).toContain('Bad HTTP "Authorization" header: "Bearer [redacted]"');
    for (const line of lines) expect(line).not.toContain('SECRET');
    h.emulator.faults.clear();
  });

  it('a webhook whose Redis step fails for another reason than an outage is a 500 logged with its stack, not "Redis unavailable"', async () => {
    const accountId = 'dbid:secret-errors-webhook';
    // Linked (its credentials are there), but its mailbox is no hash: the mark-dirty script's HSET fails.
    await h.redis.set(accountKeys(accountId).credentials, 'sealed credentials');
    await h.redis.set(accountKeys(accountId).mailbox, 'not a hash');
    const body = webhookBody([accountId], []);
    const response = await fetch(`${h.url}/webhooks/dropbox`, { method: 'POST', body, headers: { 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) } });
    expect(response.status).toBe(500);
    const logged = lines.map((line) => JSON.parse(line) as Record & { err?: { stack?: string } });
    expect(logged.filter((r) => r.msg?.includes('Redis unavailable'))).toEqual([]);
    const failed = logged.filter((r) => r.msg === 'request failed' && r.path === '/webhooks/dropbox');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.err?.message).toMatch(/WRONGTYPE/);
    expect(failed[0]!.err?.stack).toBeTruthy();
  });
});
