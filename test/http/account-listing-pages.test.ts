import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import { createApp } from '../../src/http/app.js';
import { DEFAULT_PAGE_LIMIT } from '../../src/http/paging.js';
import { silentLogger } from '../../src/logger.js';
import { startTestRedisClient } from '../support/redis-server.js';
import { writeIdleAccounts } from '../support/idle-accounts.js';

/**
 * More linked accounts than a page holds (written straight to Redis, writeIdleAccounts): what a
 * client asking for the whole listing gets, and what one following the pages gets.
 */
const ACCOUNTS = DEFAULT_PAGE_LIMIT + 100;
const ADMIN = 'admin-token-for-the-listing-test-0123456789';
const idOf = (i: number) => `dbid:listed-${String(i).padStart(4, '0')}`;

let redis: Redis;
let stopRedis: () => Promise<void>;
let engine: Engine;
let dataDir: string;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  ({ redis, stop: stopRedis } = await startTestRedisClient());
  await writeIdleAccounts(redis, Array.from({ length: ACCOUNTS }, (_, i) => idOf(i)));
  dataDir = mkdtempSync(join(tmpdir(), 'mailroom-listing-'));
  engine = new Engine({ redis, dataDir, dropbox: { hosts: { api: 'http://127.0.0.1:9', content: 'http://127.0.0.1:9' }, callTimeoutMs: 1_000 }, log: silentLogger });
  app = createApp({ engine, redis, appSecret: 'secret', adminToken: ADMIN, log: silentLogger });
});

afterAll(async () => {
  await engine?.close();
  await stopRedis();
  rmSync(dataDir, { recursive: true, force: true });
});

type Listing = { accounts: { accountId: string }[]; next: string | null };
async function list(query: string): Promise<Listing> {
  const response = await app.request(`/accounts${query}`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as Listing;
}

describe(`GET /accounts with ${ACCOUNTS} linked accounts`, () => {
  const every = Array.from({ length: ACCOUNTS }, (_, i) => idOf(i));

  it('answers every account to a client that asks for no page (one from before paging), sorted, with next null', async () => {
    expect(await list('')).toEqual({ accounts: every.map((accountId) => expect.objectContaining({ accountId, state: 'idle' })), next: null });
  });

  it('answers a page to a client that asks for one, and its pages together hold every account', async () => {
    const first = await list(`?limit=${DEFAULT_PAGE_LIMIT}`);
    expect(first.accounts.length).toBeLessThan(ACCOUNTS);
    expect(first.next).not.toBeNull();
    const seen = new Set(first.accounts.map((a) => a.accountId));
    for (let cursor = first.next; cursor !== null; ) {
      const page = await list(`?limit=${DEFAULT_PAGE_LIMIT}&cursor=${cursor}`);
      for (const account of page.accounts) seen.add(account.accountId);
      cursor = page.next;
    }
    expect([...seen].sort()).toEqual(every);
  });
});
