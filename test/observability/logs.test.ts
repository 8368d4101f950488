import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { APP_SECRET, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * The engine's logs: one JSON object per line; every line about an account carries its `accountId`;
 * no line carries a token (access, refresh, or one issued by a refresh) or the admin token.
 */
let h: Harness;
const lines: string[] = [];
beforeAll(async () => { h = await startHarness({ logLines: lines }); });
afterAll(async () => { await h.close(); });

describe('structured logs', () => {
  it('carry the account id on every line about an account and never a token', async () => {
    const plain = 'dbid:logs-plain';
    const refreshed = 'dbid:logs-refresh';
    const accessToken = 'sl.logs-access-token-SECRET-0123456789';
    const refreshToken = 'logs-refresh-token-SECRET-9876543210';
    h.emulator.model.addAccount(plain, { accessToken });
    h.emulator.model.writeFile(plain, '/posts/a.md', '# A');
    h.emulator.model.writeFile(plain, '/b.txt', 'b');
    h.emulator.model.addAccount(refreshed, { accessToken: 'sl.logs-unused-initial-token-SECRET', refreshToken });
    h.emulator.model.writeFile(refreshed, '/c.md', '# C');
    // The access tokens the emulator issues on refresh are secrets too: record them.
    const issued: string[] = [];
    const tokens = h.emulator.model.tokens;
    const refresh = tokens.refresh.bind(tokens);
    tokens.refresh = (token) => {
      const result = refresh(token);
      if (result) issued.push(result.accessToken);
      return result;
    };
    // A failed step on the way (503 on every attempt of one call), so warnings are part of what is checked.
    h.emulator.faults.inject({ route: 'files/download', accountId: plain, path: '/b.txt', status: 503, times: 4 });

    expect((await h.linkAccount(plain, { accessToken })).status).toBe(200);
    expect((await h.linkAccount(refreshed, { refreshToken })).status).toBe(200);
    await h.waitForIdle(plain);
    await h.waitForIdle(refreshed);
    h.emulator.model.writeFile(plain, '/d.md', '# D');
    expect((await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [plain, refreshed], attempts: 1 })).status).toBe(200);
    expect((await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: 'wrong', accounts: [plain], attempts: 1 })).status).toBe(403);
    await h.waitForIdle(plain);
    await h.waitForIdle(refreshed);
    await h.engine.host.flush();

    expect(lines.length).toBeGreaterThan(10);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const record of records) {
      expect(record).toMatchObject({ service: 'mailroom', level: expect.any(Number), time: expect.any(String), msg: expect.any(String) });
    }

    // Each account's lines are found by its id anywhere in the line; each such line names it as `accountId`.
    for (const account of [plain, refreshed]) {
      const about = lines.filter((line) => line.includes(account));
      expect(about.length, `lines about ${account}`).toBeGreaterThan(3);
      for (const line of about) expect((JSON.parse(line) as { accountId?: unknown }).accountId, line).toBe(account);
    }
    // Lines from the account's steps and state changes exist and carry the id (not only the HTTP ones).
    const messages = new Set(records.filter((r) => r.accountId === plain).map((r) => String(r.msg)));
    expect(messages.has('state')).toBe(true);
    expect(records.some((r) => r.level === 40 && r.accountId === plain && r.msg === 'step failed')).toBe(true);

    expect(issued.length).toBeGreaterThan(0);
    for (const secret of [accessToken, refreshToken, 'sl.logs-unused-initial-token-SECRET', ...issued]) {
      for (const line of lines) expect(line).not.toContain(secret);
    }
    for (const line of lines) {
      expect(line).not.toContain('SECRET');
      expect(line).not.toMatch(/bearer\s+(?!\[redacted\])\S/i);
      expect(line).not.toContain(APP_SECRET);
    }
  });
});
