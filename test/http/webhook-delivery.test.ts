import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { legacyUserId, sendWebhook, webhookBody, webhookSignature } from '../../src/dropbox-emulator/webhook-sender.js';
import { LINKED_ACCOUNTS_KEY } from '../../src/redis/keys.js';
import { APP_SECRET, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * What a verified notification does: every linked account it names gets one durable "dirty" mark
 * and a sync, unknown accounts leave no trace, and the answer never waits for the sync itself.
 */
let h: Harness;

beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

const hook = () => `${h.url}/webhooks/dropbox`;

async function postSigned(accounts: string[]): Promise<Response> {
  const body = webhookBody(accounts, accounts.map(legacyUserId));
  return fetch(hook(), { method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) } });
}

async function linkIdle(accountId: string, files: Record<string, string> = {}): Promise<void> {
  h.emulator.model.addAccount(accountId, { accessToken: `token-${accountId}` });
  for (const [path, content] of Object.entries(files)) h.emulator.model.writeFile(accountId, path, content);
  expect((await h.linkAccount(accountId)).status).toBe(200);
  await h.waitForIdle(accountId);
}

/** Every Redis key that mentions the account id. */
async function keysMentioning(accountId: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await h.redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    found.push(...keys.filter((k) => k.includes(accountId)));
  } while (cursor !== '0');
  return found;
}

describe('a verified webhook', () => {
  it('ignores accounts that are not linked (200) and creates nothing in Redis for them', async () => {
    const unknown = ['dbid:never-linked', 'dbid:also-unknown'];
    const invalid = '{dbid:bad}'; // not even a valid account id: it must not reach a key name
    const response = await postSigned([...unknown, invalid]);
    expect(response.status).toBe(200);
    for (const id of [...unknown, invalid]) expect(await keysMentioning(id)).toEqual([]);
    const linked = await h.redis.smembers(LINKED_ACCOUNTS_KEY);
    for (const id of [...unknown, invalid]) expect(linked).not.toContain(id);
    expect(await h.engine.status('dbid:never-linked')).toBeNull();
  });

  it('syncs each of three linked accounts named in one body, skipping an unknown fourth', async () => {
    const ids = ['dbid:multi-1', 'dbid:multi-2', 'dbid:multi-3'];
    for (const id of ids) await linkIdle(id, { '/start.md': `# start ${id}` });
    for (const id of ids) h.emulator.model.writeFile(id, '/new/after-webhook.md', `# new for ${id}`);
    const before = await Promise.all(ids.map(async (id) => (await h.engine.mailbox.read(id)).webhooks));

    const response = await postSigned([ids[0]!, 'dbid:multi-unknown', ids[1]!, ids[2]!]);
    expect(response.status).toBe(200);
    // Each linked account got exactly one durable mark by the time the 200 arrived.
    for (const [i, id] of ids.entries()) expect((await h.engine.mailbox.read(id)).webhooks).toBe(before[i]! + 1);

    for (const id of ids) await h.waitForIdle(id);
    for (const id of ids) {
      const mirror = await readMirror(h.dataDir, id);
      expect(mirror.get('/new/after-webhook.md')?.content).toBe(`# new for ${id}`);
    }
    expect(await keysMentioning('dbid:multi-unknown')).toEqual([]);
  });

  it('counts an account named twice in one body once', async () => {
    const id = 'dbid:twice';
    await linkIdle(id);
    const before = (await h.engine.mailbox.read(id)).webhooks;
    expect((await postSigned([id, id])).status).toBe(200);
    expect((await h.engine.mailbox.read(id)).webhooks).toBe(before + 1);
    await h.waitForIdle(id);
  });

  it('answers 200 at once while the sync it started is still running', async () => {
    const id = 'dbid:slow';
    await linkIdle(id, { '/a.md': '# a' });
    h.emulator.model.writeFile(id, '/slow/b.md', '# b');
    const latencyMs = 1_500;
    h.emulator.faults.setLatency(latencyMs, 'files/list_folder/continue');
    try {
      const listingsBefore = h.emulator.stats.calls(id, 'files/list_folder/continue');
      const delivery = await sendWebhook({ url: hook(), appSecret: APP_SECRET, accounts: [id], attempts: 1 });
      // Not held until the listing answered: when the 200 arrives, no listing of this run has ended
      // (the emulator counts a call when it starts; one in flight has not ended).
      const listingsEnded = h.emulator.stats.calls(id, 'files/list_folder/continue') - h.emulator.stats.listingsInFlight(id) - listingsBefore;
      expect(delivery.status).toBe(200);
      expect(listingsEnded).toBe(0);

      // At the moment Dropbox got its 200 the sync was under way, not done.
      const status = await h.engine.status(id);
      expect(status?.state).not.toBe('idle');
      expect((await h.engine.mailbox.read(id)).status).toBe('running');
      expect((await readMirror(h.dataDir, id)).has('/slow/b.md')).toBe(false);
      await waitUntil(() => h.emulator.stats.listingsInFlight(id) === 1, 5_000, 'the slow listing to be in flight');

      await h.waitForIdle(id);
      expect((await readMirror(h.dataDir, id)).get('/slow/b.md')?.content).toBe('# b');
    } finally {
      h.emulator.faults.setLatency(0, 'files/list_folder/continue');
    }
  });
});
