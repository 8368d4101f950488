import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { startHarness, type Harness } from '../support/sync-harness.js';

/**
 * An error logged whole must not carry a secret that travelled with it: ioredis hangs the command
 * and all its arguments on every error reply (`err.command.args`), and pino's default `err`
 * serializer copies every enumerable property of an error into the log line.
 */
let h: Harness;
const lines: string[] = [];
beforeAll(async () => { h = await startHarness({ logLines: lines }); });
afterAll(async () => { await h.close(); });

describe('errors in the logs', () => {
  it('a Redis error reply while linking logs the failure, never the credentials sent with the command', async () => {
    const accountId = 'dbid:secret-errors-link';
    const accessToken = 'sl.link-access-token-SECRET-0123456789abcdef';
    // Any error reply to the link's script (a script bug, an ACL without scripting, a key of the
    // wrong type left by hand): here the mailbox key holds a string, so the script's HSET fails.
    await h.redis.set(accountKeys(accountId).mailbox, 'not a hash');
    h.emulator.model.addAccount(accountId, { accessToken });
    const response = await h.api(`/accounts/${accountId}`, { method: 'PUT', body: JSON.stringify({ accessToken }) });
    expect(response.status).toBe(500);
    expect(await response.text()).not.toContain('SECRET');

    const failed = lines.map((line) => JSON.parse(line) as { msg?: string; err?: { message?: string } }).filter((r) => r.msg === 'request failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.err?.message).toMatch(/WRONGTYPE/);
    for (const line of lines) expect(line).not.toContain('SECRET');
  });
});
