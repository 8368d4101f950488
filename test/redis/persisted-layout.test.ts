import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorPersistence, idleSnapshot } from '../../src/engine/actor-persistence.js';
import { accountKeys } from '../../src/redis/keys.js';
import { waitUntil } from '../support/fixtures.js';
import { startHarness, type Harness } from '../support/sync-harness.js';

/**
 * What an account leaves in Redis, key by key and field by field, pinned with a snapshot: this is
 * the persisted format a newer engine must read. Values that change from run to run (times,
 * cursors, ids, JSON records) are shown by kind, not value.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness({ engine: { idleTimeoutMs: 200 } }); });
afterAll(async () => { await h.close(); });

async function layout(accountId: string): Promise<Record<string, unknown>> {
  const tag = `mr:{${accountId}}:`;
  const keys = (await h.redis.keys(`mr:{${accountId}}:*`)).sort();
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const name = key.slice(tag.length);
    const type = await h.redis.type(key);
    if (type === 'string') {
      out[name] = `string ${kindOf(name, '', (await h.redis.get(key))!)}`;
      continue;
    }
    if (type !== 'hash') {
      out[name] = type;
      continue;
    }
    const hash = await h.redis.hgetall(key);
    // Random ids as field names: their number is what is stable.
    if (name === 'entries' || name === 'file-ids') {
      out[name] = `${Object.keys(hash).length} × <id> -> ${kindOf(name, '', Object.values(hash)[0]!)}`;
      continue;
    }
    out[name] = Object.fromEntries(Object.keys(hash).sort().map((field) => [field, kindOf(name, field, hash[field]!)]));
  }
  return out;
}

/** Stable values stay (flags, states, counters a run fixes); the rest is named by its kind. */
function kindOf(key: string, field: string, value: string): string {
  // At least Redis's clock in µs when granted (lua/lib/next-fence.lua): not a count of grants.
  if (key === 'mailbox' && field === 'fence') return /^\d{16,}$/.test(value) ? '<fencing token: epoch µs or above>' : `<fencing token too small: ${value}>`;
  if (/^\d{13}$/.test(value)) return '<epoch ms>';
  if (key === 'mailbox' && field !== 'actorVersion') return value;
  if (key === 'actor' && field === 'state') return value;
  if (value.startsWith('{') || value.startsWith('[')) return `<json ${JSON.parse(value) instanceof Array ? 'array' : 'object'}>`;
  return `<${/^\d+$/.test(value) ? 'number' : 'string'}>`;
}

describe('the persisted Redis layout of an account', () => {
  it('keeps an idle, passivated account to its mailbox, credentials and cursor: no actor hash, no fence key', async () => {
    const account = 'dbid:layout';
    h.emulator.model.addAccount(account, { accessToken: 'tok-layout' });
    h.emulator.model.writeFile(account, '/posts/hello.md', '# Hello');
    h.emulator.model.writeFile(account, '/photo.jpg', 'bytes');
    expect((await h.linkAccount(account, { accessToken: 'tok-layout' })).status).toBe(200);
    await h.waitForIdle(account);
    await waitUntil(async () => (await h.redis.exists(accountKeys(account).lease)) === 0, 5_000, 'the idle actor to be passivated');
    expect(await layout(account)).toMatchSnapshot();
    // Every small field in one hash, small enough to stay a listpack (docs/benchmarks.md, figure 7).
    expect(await h.redis.object('ENCODING', accountKeys(account).mailbox)).toBe('listpack');

    // ...and it restores as the idle actor it was: one completed run, a last sync time.
    const stored = await new ActorPersistence(h.redis).load(account);
    expect(stored).toMatchObject({ state: 'idle', snapshot: { value: 'idle', children: {}, context: { accountId: account, runs: 1, attempt: 0, lastError: null } } });
    expect((stored!.snapshot as { context: { lastSyncedAt: number } }).context.lastSyncedAt).toBeGreaterThan(0);
  });

  it('keeps an account awaiting a re-link parked, passivated, its whole snapshot kept: no fence key or lease', async () => {
    const account = 'dbid:layout-parked';
    h.emulator.model.addAccount(account, { accessToken: 'tok-parked' });
    h.emulator.model.writeFile(account, '/posts/hello.md', '# Hello');
    expect((await h.linkAccount(account, { accessToken: 'tok-parked' })).status).toBe(200);
    await h.waitForIdle(account);
    h.emulator.model.tokens.revokeAccount(account);
    await h.engine.notify([account]);
    await waitUntil(async () => (await h.redis.hget(accountKeys(account).mailbox, 'status')) === 'parked', 5_000, 'the account parked');
    await waitUntil(async () => (await h.redis.exists(accountKeys(account).lease)) === 0, 5_000, 'the actor to be passivated');
    expect(await layout(account)).toMatchSnapshot();
  });

  it('keeps the whole snapshot while a run is going, and drops it again when the run ends', async () => {
    const account = 'dbid:layout-running';
    h.emulator.model.addAccount(account, { accessToken: 'tok-running' });
    h.emulator.model.writeFile(account, '/posts/a.md', '# A');
    // Slow downloads hold the run in `downloading` long enough to look at it.
    h.emulator.faults.setLatency(400, 'files/download');
    try {
      expect((await h.linkAccount(account, { accessToken: 'tok-running' })).status).toBe(200);
      await waitUntil(async () => (await h.redis.hget(accountKeys(account).actor, 'state')) === 'downloading', 5_000, 'the download step to be persisted');
      expect(await layout(account)).toMatchSnapshot();
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    await h.waitForIdle(account);
    await waitUntil(async () => (await h.redis.exists(accountKeys(account).actor)) === 0, 5_000, 'the idle snapshot to replace the hash');
    expect(await h.redis.hget(accountKeys(account).mailbox, 'runs')).toBe('1');
  });
});

describe('an idle snapshot that says more than the compact record', () => {
  it('is stored whole, and loads back as the same snapshot', async () => {
    // A machine that keeps lastError in idle, or a context field a newer one adds, is not compact.
    const account = 'dbid:layout-idle-whole';
    const persistence = new ActorPersistence(h.redis);
    const idle = idleSnapshot(account, { runs: 3, lastSyncedAt: 1_700_000_000_000 }) as unknown as { context: Record<string, unknown> };
    const saysMore = { ...idle, context: { ...idle.context, lastError: { kind: 'auth', message: 're-link', at: 1_700_000_000_000, jitter: 0.5 } } };

    expect(await persistence.save(account, 1, saysMore, 'idle', Date.now())).toBe('saved');

    expect(await h.redis.hmget(accountKeys(account).mailbox, 'runs', 'lastSyncedAt')).toEqual([null, null]);
    expect(await h.redis.hget(accountKeys(account).actor, 'state')).toBe('idle');
    const loaded = await persistence.load(account);
    expect(loaded).toMatchObject({ state: 'idle', version: 1 });
    expect(loaded?.compact).toBeUndefined();
    expect(loaded?.snapshot).toEqual(JSON.parse(JSON.stringify(saysMore)));
  });
});
