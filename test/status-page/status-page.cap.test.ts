import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusMessage } from '../../src/status-page/messages.js';
import { engineSource, StatusHub } from '../../src/status-page/status-hub.js';
import { CommandLog } from '../support/redis-monitor.js';
import { startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * The status page's cost is bounded by its cap, not by the linked accounts: a hub on the real
 * engine and Redis, with accounts linked straight through the store (no sync runs, so nothing but
 * the hub talks to Redis while its commands are counted).
 */
let h: Harness;
let commands: CommandLog;
const CAP = 5;
const hubs: StatusHub[] = [];

beforeAll(async () => {
  h = await startHarness();
  commands = await CommandLog.start(h.redis);
});
afterAll(async () => {
  for (const hub of hubs) hub.stop();
  commands?.stop();
  await h?.close();
});

/** Links `count` accounts more (no sync: their actors never start). */
let linkedSoFar = 0;
async function linkIdle(count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const accountId = `dbid:cap-${String(linkedSoFar++).padStart(3, '0')}`;
    await h.engine.accounts.link(accountId, { accessToken: `token-${accountId}` }, [], Date.now());
  }
}

/** A page on a new hub: what it shows, as page.js keeps it from the messages. */
interface Page {
  hub: StatusHub;
  accounts: Map<string, { state: string }>;
  linked: number | undefined;
  /** Every message so far. */
  messages: StatusMessage[];
  close(): void;
}

async function openPage(): Promise<Page> {
  const hub = new StatusHub(engineSource(h.engine), { maxAccounts: CAP, settleMs: 5, progressIntervalMs: 5, refreshIntervalMs: 600_000, heartbeatMs: 600_000 }).start();
  hubs.push(hub);
  const page: Page = { hub, accounts: new Map(), linked: undefined, messages: [], close: () => {} };
  const onChunk = (chunk: string) => {
    for (const block of chunk.split('\n\n').filter(Boolean)) {
      const data = block.split('\n').find((line) => line.startsWith('data: '));
      if (!data) continue;
      const message = JSON.parse(data.slice(6)) as StatusMessage;
      page.messages.push(message);
      if (message.type === 'snapshot') {
        page.linked = message.linked;
        for (const account of message.accounts) page.accounts.set(account.accountId, account);
      }
      if (message.type === 'linked') page.linked = message.linked;
      if (message.type === 'account') page.accounts.set(message.account.accountId, message.account);
      if (message.type === 'removed') page.accounts.delete(message.accountId);
      // The cap holds after every message, not only in the end.
      expect(page.accounts.size).toBeLessThanOrEqual(CAP);
    }
  };
  page.close = await hub.connect({ send: onChunk });
  return page;
}

const names = (sent: string[][]) => sent.map((args) => args[0]!.toLowerCase()).sort();

describe(`a status page with maxAccounts ${CAP}`, () => {
  it('holds 5 accounts and says 12 are linked; a refresh sends the same commands with 12 or 60 linked accounts', async () => {
    await linkIdle(12);
    let page!: Page;
    const connectAt12 = await commands.during(h.redis, async () => {
      page = await openPage();
    });
    expect(page.accounts.size).toBe(CAP);
    expect(page.linked).toBe(12);
    const refreshAt12 = await commands.during(h.redis, () => page.hub.refresh());
    page.close();

    await linkIdle(48);
    let second!: Page;
    const connectAt60 = await commands.during(h.redis, async () => {
      second = await openPage();
    });
    expect(second.accounts.size).toBe(CAP);
    expect(second.linked).toBe(60);
    const refreshAt60 = await commands.during(h.redis, () => second.hub.refresh());
    second.close();

    // One count, then three commands (the fingerprint) per shown account: nothing per linked one.
    expect(refreshAt12.length).toBe(1 + 3 * CAP);
    expect(names(refreshAt60)).toEqual(names(refreshAt12));
    expect(names(refreshAt60)).not.toContain('smembers');
    expect(names(refreshAt60)).not.toContain('sscan');
    // The snapshot reads the shown accounts only, and never every id at once.
    expect(names(connectAt60)).toEqual(names(connectAt12));
    expect(names(connectAt60)).not.toContain('smembers');
  });

  it('an account that starts syncing appears on a page that was at its cap, in the slot of an idle one', async () => {
    const page = await openPage();
    expect(page.accounts.size).toBe(CAP);
    const before = new Set(page.accounts.keys());
    const accountId = 'dbid:cap-syncing';
    h.emulator.model.addAccount(accountId, { accessToken: `token-${accountId}` });
    for (let i = 0; i < 20; i++) h.emulator.model.writeFile(accountId, `/notes/${i}.md`, `# note ${i}`);
    h.emulator.faults.setLatency(40, 'files/download');
    try {
      expect((await h.linkAccount(accountId)).status).toBe(200);
      await waitUntil(() => page.accounts.get(accountId)?.state === 'downloading', 10_000, 'the syncing account on the page, downloading');
      expect(page.accounts.size).toBe(CAP);
      const gone = [...before].filter((id) => !page.accounts.has(id));
      expect(gone).toHaveLength(1);
      await h.waitForIdle(accountId);
      await waitUntil(() => page.accounts.get(accountId)?.state === 'idle', 10_000, 'the account on the page, idle');
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
      page.close();
    }
  });

  it('unlinking a shown account removes it from the page, and the next refresh fills its slot', async () => {
    const page = await openPage();
    const linked = page.linked!;
    const [unlinked] = [...page.accounts.keys()];
    expect((await h.api(`/accounts/${unlinked}`, { method: 'DELETE' })).status).toBeLessThan(300);
    await page.hub.refresh();
    expect(page.messages).toContainEqual(expect.objectContaining({ type: 'removed', accountId: unlinked }));
    expect(page.accounts.has(unlinked!)).toBe(false);
    expect(page.linked).toBe(linked - 1);
    expect(page.accounts.size).toBe(CAP);
    page.close();
  });
});
