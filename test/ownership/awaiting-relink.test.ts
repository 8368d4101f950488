import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKeys } from '../../src/redis/keys.js';
import { expectConverged, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * An account whose credentials Dropbox refuses (the user revoked the app) waits for a re-link in
 * `awaitingRelink`: its actor leaves memory like an idle one, its mailbox says `parked`, and nothing
 * (a webhook, the sweep's reaper or poll, a restart) calls Dropbox for it again until a re-link,
 * an operator's resync, or the sweep's rare re-check (parkedRecheckMs, off in this harness unless
 * a test turns it on). Before, it retried every 5 minutes for good, holding a lease, its memory
 * and, in a backoff, the account's place in every sweep.
 */
let h: Harness;

beforeAll(async () => {
  // The poll would mark any account not listed for 1 ms dirty: a parked one must not be among them.
  h = await startHarness({ engine: { idleTimeoutMs: 1_000, leaseTtlMs: 2_000, pollIntervalMs: 1 } });
});
afterAll(async () => {
  await h?.close();
});

/** Calls that reached the emulator for the account, the ones refused for its revoked token included. */
const dropboxCalls = (account: string) => h.emulator.stats.calls(account) + h.emulator.stats.refused(account);

/** A synced account whose token the user then revoked, refused at its next listing. */
async function revokedAndRefused(account: string): Promise<void> {
  await h.linkSynced(account, { '/posts/a.md': '# A' });
  h.emulator.model.tokens.revokeAccount(account);
  h.emulator.model.writeFile(account, '/posts/b.md', '# B');
  await h.engine.notify([account]);
  await waitUntil(async () => (await h.status(account)).state === 'awaitingRelink', 10_000, 'the account to await a re-link');
}

describe('an account whose credentials Dropbox refused', () => {
  it('is passivated, parked, and left alone by webhooks, the sweep and a restart until it is re-linked', async () => {
    const account = 'dbid:awaiting-relink';
    await revokedAndRefused(account);
    expect(h.emulator.stats.refused(account)).toBeGreaterThan(0); // what dropboxCalls counts below
    const status = await h.status(account);
    expect(status.lastError?.kind).toBe('auth');
    expect(status.lastError?.message).toMatch(/re-link/);
    await waitUntil(async () => (await h.engine.mailbox.read(account)).status === 'parked', 5_000, 'the mailbox to say parked');
    // A webhook while the actor is still in memory: recorded for the re-link, and it does not keep
    // the actor from leaving (nor wake it again as it leaves).
    const callsBefore = dropboxCalls(account);
    expect(h.engine.host.actor(account)).toBeDefined();
    expect(await h.engine.notify([account])).toEqual({ [account]: 'parked' });

    // Passivated like an idle actor: no memory, no lease.
    await waitUntil(() => h.engine.host.actor(account) === undefined, 5_000, 'the actor to leave memory');
    expect(await h.engine.leases.holder(account)).toBeNull();

    expect(await h.engine.notify([account])).toEqual({ [account]: 'parked' });
    // Neither the reaper nor the poll wakes it, though it is dirty and was not listed for long.
    const swept = await h.engine.sweep();
    expect(swept).toEqual({ reaped: 0, polled: 0, rechecked: 0 });
    // Nor does another process's boot.
    const peer = await h.startPeer({ idleTimeoutMs: 200, leaseTtlMs: 2_000, ownerId: 'peer-after-restart' });
    expect(await peer.engine.host.boot()).toBe(0);
    expect(peer.engine.host.actor(account)).toBeUndefined();
    expect(h.engine.host.actor(account)).toBeUndefined();
    expect(dropboxCalls(account)).toBe(callsBefore);
    expect(await h.status(account)).toMatchObject({ state: 'awaitingRelink', dirty: true });
    expect((await readMirror(h.dataDir, account)).has('/posts/b.md')).toBe(false);

    // The re-link ends it: the change that came meanwhile is synced.
    h.emulator.model.tokens.registerAccessToken(account, 'token-after-relink');
    expect((await h.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: 'token-after-relink' }) })).status).toBe(200);
    await h.waitForIdle(account);
    await expectConverged(h, account);
    expect((await h.engine.mailbox.read(account)).status).toBe('idle');
  });

  it("an operator's resync tries the credentials once more, and parks again when they are still refused", async () => {
    const account = 'dbid:awaiting-relink-resync';
    await revokedAndRefused(account);
    await waitUntil(() => h.engine.host.actor(account) === undefined, 5_000, 'the actor to leave memory');
    const callsBefore = dropboxCalls(account);

    expect((await h.api(`/accounts/${account}/resync`, { method: 'POST' })).status).toBe(202);
    await waitUntil(() => dropboxCalls(account) > callsBefore, 5_000, 'the listing of the resync');
    await waitUntil(async () => (await h.engine.mailbox.read(account)).status === 'parked', 5_000, 'the account to be parked again');
    expect((await h.status(account)).state).toBe('awaitingRelink');
    expect(dropboxCalls(account)).toBe(callsBefore + 1); // one refused listing, no retries
  });

  // The interval is long enough that no other account of this file comes due while it runs: each
  // test sets its own account's last try back by hand, as if the time had passed for it alone.
  const RECHECK_MS = 600_000;
  const lastTriedAgo = (account: string, ms: number) => h.redis.hset(accountKeys(account).mailbox, 'listedAt', String(Date.now() - ms));

  it('has its credentials tried once more by the sweep after parkedRecheckMs, and syncs when Dropbox takes them again', async () => {
    const account = 'dbid:awaiting-relink-recheck';
    await revokedAndRefused(account);
    await waitUntil(() => h.engine.host.actor(account) === undefined, 5_000, 'the actor to leave memory');
    // The refusal was an incident of Dropbox's own: it takes the very token again. Nobody re-links.
    h.emulator.model.tokens.registerAccessToken(account, `token-${account}`);
    const peer = await h.startPeer({ ownerId: 'recheck-peer', idleTimeoutMs: 200, leaseTtlMs: 2_000, parkedRecheckMs: RECHECK_MS });
    // Tried a moment ago: not yet.
    expect(await peer.engine.sweep()).toMatchObject({ rechecked: 0 });
    expect((await h.engine.mailbox.read(account)).status).toBe('parked');
    await lastTriedAgo(account, 2 * RECHECK_MS);
    expect(await peer.engine.sweep()).toMatchObject({ rechecked: 1 });
    await h.waitForIdle(account);
    await expectConverged(h, account);
    // Synced: a later wait for a re-link starts its re-checks from the shortest interval again.
    expect(await h.engine.mailbox.read(account)).toMatchObject({ status: 'idle', rechecks: 0 });
    expect((await h.status(account)).lastError).toBeNull();
  });

  it('parks again after one refused try when the credentials are still refused, and waits twice as long for the next', async () => {
    const account = 'dbid:awaiting-relink-recheck-refused';
    await revokedAndRefused(account);
    await waitUntil(() => h.engine.host.actor(account) === undefined, 5_000, 'the actor to leave memory');
    const callsBefore = dropboxCalls(account);
    const peer = await h.startPeer({ ownerId: 'recheck-refused-peer', idleTimeoutMs: 200, leaseTtlMs: 2_000, parkedRecheckMs: RECHECK_MS });
    await lastTriedAgo(account, 1.5 * RECHECK_MS);
    expect(await peer.engine.sweep()).toMatchObject({ rechecked: 1 });
    await waitUntil(() => dropboxCalls(account) > callsBefore, 5_000, "the re-check's listing");
    await waitUntil(async () => (await h.engine.mailbox.read(account)).status === 'parked', 5_000, 'the account to be parked again');
    expect((await h.status(account)).state).toBe('awaitingRelink');
    expect(dropboxCalls(account)).toBe(callsBefore + 1); // one refused listing, no retries
    // One re-check of this wait done: the next is due after twice the interval, not once.
    await waitUntil(() => h.engine.host.actor(account) === undefined && peer.engine.host.actor(account) === undefined, 5_000, 'the actor to leave memory again');
    await lastTriedAgo(account, 1.5 * RECHECK_MS);
    expect(await peer.engine.sweep()).toMatchObject({ rechecked: 0 });
    await lastTriedAgo(account, 2.5 * RECHECK_MS);
    expect(await peer.engine.sweep()).toMatchObject({ rechecked: 1 });
    await waitUntil(() => dropboxCalls(account) > callsBefore + 1, 5_000, "the second re-check's listing");
    await waitUntil(async () => (await h.engine.mailbox.read(account)).status === 'parked', 5_000, 'the account to be parked once more');
  });

  it('is not lost when the wake of its re-check is: the account is marked running, and the reaper takes it from a dead owner', async () => {
    const account = 'dbid:awaiting-relink-recheck-lost';
    await revokedAndRefused(account);
    await waitUntil(() => h.engine.host.actor(account) === undefined, 5_000, 'the actor to leave memory');
    h.emulator.model.tokens.registerAccessToken(account, `token-${account}`);
    // A process that died holding the account's lease: the re-check's wake is published to nobody.
    const k = accountKeys(account);
    const fence = await h.redis.hget(k.fence, 'fence');
    await h.redis.set(k.lease, `dead-process|${fence}`, 'PX', 1_000);
    const peer = await h.startPeer({ ownerId: 'recheck-lost-peer', idleTimeoutMs: 60_000, leaseTtlMs: 2_000, parkedRecheckMs: RECHECK_MS });
    await lastTriedAgo(account, 2 * RECHECK_MS);
    expect(await peer.engine.sweep()).toMatchObject({ rechecked: 1 });
    expect((await h.engine.mailbox.read(account)).status).toBe('running');
    // Once the dead process's lease has expired, the reaper finds a running account nobody owns.
    await waitUntil(async () => (await h.redis.exists(k.lease)) === 0, 5_000, "the dead process's lease to expire");
    expect(await peer.engine.sweep()).toMatchObject({ reaped: 1 });
    await h.waitForIdle(account);
    await expectConverged(h, account);
  });

  it('a token revoked during the downloads stops them: the rest of the queue is not tried with it', async () => {
    const account = 'dbid:awaiting-relink-downloads';
    const files = 40;
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    for (let n = 0; n < files; n++) h.emulator.model.writeFile(account, `/posts/${n}.md`, `# ${n}`);
    h.emulator.faults.setLatency(100, 'files/download');
    try {
      expect((await h.linkAccount(account)).status).toBe(200);
      await waitUntil(() => h.emulator.stats.downloads(account) > 0, 10_000, 'the first downloads');
      h.emulator.model.tokens.revokeAccount(account);
      await waitUntil(async () => (await h.status(account)).state === 'awaitingRelink', 10_000, 'the account to await a re-link');
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    const downloaded = h.emulator.stats.downloads(account);
    expect(downloaded).toBeLessThan(files);
    // At most the downloads already started when the first refusal came back (downloadsPerAccount, 4).
    expect(h.emulator.stats.refused(account, 'files/download')).toBeLessThanOrEqual(4);
    expect((await h.status(account)).pending).toBe(files - downloaded); // still queued for after the re-link
  });
});

describe('a re-link whose wake was lost', () => {
  it('is found by the next boot: an account awaiting a re-link whose mailbox says running is woken', async () => {
    const account = 'dbid:relink-wake-lost';
    await revokedAndRefused(account);
    await waitUntil(() => h.engine.host.actor(account) === undefined, 5_000, 'the actor to leave memory');
    // Re-linked by a process that died before it could wake the account: the link is stored, the
    // mailbox says running, nobody holds the account.
    h.emulator.model.tokens.registerAccessToken(account, 'token-after-relink');
    await h.engine.accounts.link(account, { accessToken: 'token-after-relink' }, [], Date.now());
    const peer = await h.startPeer({ ownerId: 'relink-wake-lost-peer', idleTimeoutMs: 60_000 });
    expect(await peer.engine.host.boot()).toBe(1);
    await h.waitForIdle(account);
    await expectConverged(h, account);
  });
});

/**
 * An account with 40 files linked through `api`, its downloads slow (four at a time, 1 s each):
 * while they are under way the user revokes the app and links it again at once, through `api`.
 */
async function relinkDuringDownloads(api: (path: string, init?: RequestInit) => Promise<Response>, account: string): Promise<void> {
  h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
  for (let n = 0; n < 40; n++) h.emulator.model.writeFile(account, `/posts/${n}.md`, `# ${n}`);
  const link = (token: string) => api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: token }) });
  h.emulator.faults.setLatency(1_000, 'files/download');
  try {
    expect((await link(`token-${account}`)).status).toBe(200);
    await waitUntil(() => h.emulator.stats.calls(account, 'files/download') > 0, 10_000, 'the first downloads');
    h.emulator.model.tokens.revokeAccount(account);
    h.emulator.model.tokens.registerAccessToken(account, 'token-after-relink');
    expect((await link('token-after-relink')).status).toBe(200);
  } finally {
    h.emulator.faults.setLatency(0, 'files/download');
  }
}

describe('a re-link that races the refusal of the credentials it replaces', () => {
  it('during the downloads that still hold the old token: the refusal does not park the account, the new token syncs it', async () => {
    const account = 'dbid:relink-mid-download';
    await relinkDuringDownloads((path, init) => h.api(path, init), account);
    // The step's next download still uses the session it started with: refused.
    await waitUntil(() => h.emulator.stats.refused(account) > 0, 10_000, 'a call with the old token');
    await h.waitForIdle(account);
    await expectConverged(h, account);
  });

  it('while the snapshot that would park it is being written, the only run slot taken: the account syncs once the slot frees', async () => {
    const account = 'dbid:relink-during-park';
    const busy = 'dbid:relink-during-park-busy';
    const peer = await h.startPeer({ ownerId: 'relink-park-peer', maxActiveRuns: 1, idleTimeoutMs: 60_000, leaseTtlMs: 2_000 });
    const put = (id: string, token: string) => peer.api(`/accounts/${id}`, { method: 'PUT', body: JSON.stringify({ accessToken: token }) });
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/posts/a.md', '# A');
    expect((await put(account, `token-${account}`)).status).toBe(200);
    await h.waitForIdle(account);

    // The snapshot write of awaitingRelink waits for the test to let it go.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let landed = false;
    const persistence = peer.engine.persistence;
    const save = persistence.save.bind(persistence);
    persistence.save = async (...args) => {
      if (args[3] !== 'awaitingRelink') return save(...args);
      await held;
      const saved = await save(...args);
      landed = true;
      return saved;
    };
    h.emulator.model.tokens.revokeAccount(account);
    h.emulator.model.writeFile(account, '/posts/b.md', '# B');
    await peer.engine.notify([account]);
    await waitUntil(() => String(peer.engine.host.actor(account)?.getSnapshot().value) === 'awaitingRelink', 5_000, 'the refusal');
    expect((await peer.engine.mailbox.read(account)).status).toBe('running'); // not parked yet

    // The only run slot is taken by an account whose listing hangs (until its call deadline).
    h.emulator.model.addAccount(busy, { accessToken: `token-${busy}` });
    h.emulator.faults.inject({ route: 'files/list_folder', accountId: busy, hang: true });
    expect((await put(busy, `token-${busy}`)).status).toBe(200);
    await waitUntil(() => String(peer.engine.host.actor(busy)?.getSnapshot().value) === 'fetching', 5_000, 'the slot taken');

    // The re-link finds a run going (the mailbox says running): it only leaves a RESYNC, which waits for the slot.
    h.emulator.model.tokens.registerAccessToken(account, 'token-after-relink');
    expect((await put(account, 'token-after-relink')).status).toBe(200);
    release();
    await waitUntil(() => landed, 5_000, 'the held write to land');
    expect((await peer.engine.mailbox.read(account)).status).toBe('running'); // the re-link came after the refusal: not parked

    await h.waitForIdle(busy);
    await h.waitForIdle(account);
    await expectConverged(h, account);
    persistence.save = save;
  }, 30_000);

  it('during the downloads, and the answer of the write that found it re-linked is lost: the mailbox says so, the account syncs', async () => {
    const account = 'dbid:relink-answer-lost';
    // Actors stay in memory: only a wake, not the release at passivation, can end the wait here.
    const peer = await h.startPeer({ ownerId: 'relink-answer-lost-peer', idleTimeoutMs: 60_000 });
    // The first write of awaitingRelink lands in Redis, but its answer never arrives (a timeout).
    const persistence = peer.engine.persistence;
    const save = persistence.save.bind(persistence);
    let lost = 0;
    persistence.save = async (...args) => {
      const saved = await save(...args);
      if (args[3] === 'awaitingRelink' && lost++ === 0) throw new Error('Command timed out');
      return saved;
    };
    await relinkDuringDownloads(peer.api, account);
    await waitUntil(() => lost > 0, 10_000, 'the refusal after the re-link');
    await h.waitForIdle(account, 10_000);
    await expectConverged(h, account);
    persistence.save = save;
  }, 30_000);

  it('a re-link whose RELINKED message this process missed: the session of the old credentials is dropped, not retried in a loop', async () => {
    const account = 'dbid:relink-missed-message';
    const peer = await h.startPeer({ ownerId: 'relink-missed-peer', idleTimeoutMs: 60_000 });
    h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
    h.emulator.model.writeFile(account, '/posts/a.md', '# A');
    expect((await peer.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: `token-${account}` }) })).status).toBe(200);
    await h.waitForIdle(account); // the peer's actor stays in memory with the session it built
    h.emulator.model.tokens.revokeAccount(account);
    h.emulator.model.tokens.registerAccessToken(account, 'token-after-relink');
    h.emulator.model.writeFile(account, '/posts/b.md', '# B');
    // Another process stores the new credentials; its RELINKED never reaches the peer, its wake does.
    await h.engine.accounts.link(account, { accessToken: 'token-after-relink' }, [], Date.now());
    await peer.engine.host.send(account, { type: 'WEBHOOK' });
    await h.waitForIdle(account, 5_000);
    await expectConverged(h, account);
    expect(h.emulator.stats.refused(account)).toBe(1); // the cached session's one call
  });
});
