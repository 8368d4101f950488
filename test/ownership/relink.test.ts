import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { WAKE_CHANNEL } from '../../src/engine/engine.js';
import { openRedis } from '../../src/redis/connection.js';
import { TestRedis } from '../support/redis-server.js';
import { APP_SECRET, readMirror, startHarness, waitUntil, type EngineServer, type Harness } from '../support/sync-harness.js';

/**
 * A re-link or a webhook that reaches a process X while another, O, owns the account, and X's only
 * run slot is taken: X keeps the wake waiting for the slot, so O must hear of it another way.
 */
let redisServer: TestRedis;
let h: Harness;
let x: EngineServer;
let watcher: Redis;
const messages: { accountId: string; type: string }[] = [];

beforeAll(async () => {
  redisServer = await TestRedis.start();
  h = await startHarness({ redisServer, engine: { idleTimeoutMs: 60_000, leaseTtlMs: 2_000, ownerId: 'proc-o' } });
  x = await h.startPeer({ idleTimeoutMs: 60_000, leaseTtlMs: 2_000, ownerId: 'proc-x', maxActiveRuns: 1 });
  watcher = await openRedis(redisServer.url);
  watcher.on('message', (_channel: string, raw: string) => messages.push(JSON.parse(raw) as { accountId: string; type: string }));
  await watcher.subscribe(WAKE_CHANNEL);
});
afterAll(async () => {
  h.emulator.faults.clear();
  watcher?.disconnect();
  await h?.close();
  await redisServer?.stop();
});

const putVia = (server: EngineServer, accountId: string, body: unknown) => server.api(`/accounts/${accountId}`, { method: 'PUT', body: JSON.stringify(body) });

/** An account linked on O with a token Dropbox refuses: O's actor waits for a re-link, in memory. */
async function awaitingRelinkAtOwner(account: string): Promise<void> {
  h.emulator.model.addAccount(account, { accessToken: 'the-valid-token' });
  h.emulator.model.writeFile(account, '/posts/a.md', '# A');
  expect((await h.linkAccount(account, { accessToken: 'a-revoked-token' })).status).toBe(200);
  await waitUntil(async () => (await h.status(account)).lastError?.kind === 'auth', 10_000, 'the auth failure');
  expect(h.engine.host.actor(account)).toBeDefined();
}

describe('a re-link at a process that does not own the account', () => {
  it("replaces the credentials the owner's actor uses: an account awaiting a re-link recovers", async () => {
    const account = 'dbid:relink-idle-x';
    await awaitingRelinkAtOwner(account);
    const owner = h.engine.host.actor(account);
    expect((await putVia(x, account, { accessToken: 'the-valid-token' })).status).toBe(200);
    await waitUntil(async () => (await readMirror(h.dataDir, account)).has('/posts/a.md'), 10_000, 'the owner to sync with the new token');
    await h.waitForIdle(account);
    expect(h.engine.host.actor(account)).toBe(owner);
    expect(x.engine.host.actor(account)).toBeUndefined();
  });
});

describe('a re-link at a busy process that does not own the account', () => {
  it("reaches the owner, whose account awaiting a re-link then syncs with the new token", async () => {
    const account = 'dbid:relink-busy';
    await awaitingRelinkAtOwner(account);

    // X's only run slot: an account of its own whose listing hangs.
    const busy = 'dbid:relink-busy-x';
    h.emulator.model.addAccount(busy, { accessToken: `token-${busy}` });
    h.emulator.faults.inject({ route: 'files/list_folder', accountId: busy, hang: true, times: Infinity });
    expect((await putVia(x, busy, { accessToken: `token-${busy}` })).status).toBe(200);
    await waitUntil(() => String(x.engine.host.actor(busy)?.getSnapshot().value) === 'fetching', 5_000, 'X busy');

    expect((await putVia(x, account, { accessToken: 'the-valid-token' })).status).toBe(200);
    expect(x.engine.host.handles(account)).toBe(true); // the wake waits in X for the slot
    await waitUntil(async () => (await readMirror(h.dataDir, account)).has('/posts/a.md'), 10_000, 'the owner to sync with the new token');
    await h.waitForIdle(account);
    expect(messages).toContainEqual({ accountId: account, type: 'RELINKED' });
    expect(x.engine.host.actor(account)).toBeUndefined();
    // X's slot free again for the next test: the hung listing ends at its deadline, then succeeds.
    h.emulator.faults.clear();
    await h.waitForIdle(busy);
  }, 30_000);
});

describe('a webhook at a busy process that does not own the account', () => {
  it('is passed on to the owner once the slot it waited for is free', async () => {
    const account = 'dbid:forward-owner';
    expect((await h.linkAccount(account)).status).toBe(200);
    await h.waitForIdle(account);
    expect(h.engine.host.actor(account)?.getSnapshot().value).toBe('idle'); // O owns it, idle in memory

    const busy = 'dbid:forward-busy-x';
    h.emulator.model.addAccount(busy, { accessToken: `token-${busy}` });
    h.emulator.faults.inject({ route: 'files/list_folder', accountId: busy, hang: true, times: 1 });
    expect((await putVia(x, busy, { accessToken: `token-${busy}` })).status).toBe(200);
    await waitUntil(() => String(x.engine.host.actor(busy)?.getSnapshot().value) === 'fetching', 5_000, 'X busy');

    h.emulator.model.writeFile(account, '/posts/new.md', '# New');
    const webhook = await sendWebhook({ url: `${x.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 });
    expect(webhook.status).toBe(200);
    expect(x.engine.host.handles(account)).toBe(true); // waiting in X for its slot
    // X's hung listing ends at its call deadline and is retried without the fault: the slot frees.
    await h.waitForIdle(busy);
    await waitUntil(async () => (await readMirror(h.dataDir, account)).has('/posts/new.md'), 10_000, 'the owner to sync the change');
    expect(x.engine.host.actor(account)).toBeUndefined();
  }, 30_000);
});
