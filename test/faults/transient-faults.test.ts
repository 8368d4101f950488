import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mirrorFolder, stagingFolder } from '../../src/sync/sync-deps.js';
import { APP_KEY, APP_SECRET, expectedMirror, readMirror, startHarness, waitUntil, type Harness, expectConverged as expectAccountConverged } from '../support/sync-harness.js';

/**
 * Transient faults. On files/download: 5xx (retried inside the call, and a storm that outlasts
 * those retries and parks the actor in `backoff`), a hanging response (cut by the per-call
 * deadline), bytes that do not match content_hash, a body cut mid-way. On a multi-page listing: a
 * 5xx storm and a hang between pages, which must resume from the saved page, not from scratch. In every case the user must end with an exact
 * mirror, correct entries, and an idle account with no error; bad bytes must never reach the mirror.
 */

// Short enough to keep the hang tests quick, long enough that no healthy local call ever hits it.
const CALL_TIMEOUT_MS = 1_000;

/** A free port, so the engine's Dropbox hosts (and its short call deadline) can be set before the emulator starts. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let h: Harness;
beforeAll(async () => {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  h = await startHarness({
    emulator: { port },
    engine: {
      dropbox: { appKey: APP_KEY, appSecret: APP_SECRET, hosts: { api: origin, content: origin }, callTimeoutMs: CALL_TIMEOUT_MS },
      // Jitter 0: the actor's first backoff is exactly 500 ms (real time) and in-call retries 5, 10, 20 ms.
      random: () => 0,
    },
  });
});
afterAll(async () => { await h.close(); });
// A test that fails half-way must not leave its faults armed for the next one.
afterEach(() => { h.emulator.faults.clear(); });

const at = new Date('2024-06-01T08:00:00Z');



/** Converged, and every entry shows its post's newest title. */
async function expectConverged(accountId: string): Promise<void> {
  await expectAccountConverged(h, accountId);
  const posts = h.emulator.model.listTree(accountId).filter((i) => i.kind === 'file' && i.pathLower.endsWith('.md'));
  const entries = await h.engine.entries.list(accountId);
  expect(entries.map((e) => [e.path, e.title]).sort()).toEqual(posts.map((p) => [p.pathDisplay, titleOf(p.content!)]).sort());
}

function titleOf(content: Uint8Array): string {
  return /^# (.*)$/m.exec(Buffer.from(content).toString('utf8'))![1]!;
}

/** Every name under a folder, dot-files (temp files) included. */
async function allNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true })).map(String);
  } catch {
    return [];
  }
}

/** Records every state the actor enters from now on. */
function recordStates(accountId: string): { states: string[]; stop(): void } {
  const states: string[] = [];
  const sub = h.engine.host.actor(accountId)!.subscribe((s) => {
    const value = String(s.value);
    if (states.at(-1) !== value) states.push(value);
  });
  return { states, stop: () => sub.unsubscribe() };
}

async function linkWith(accountId: string, files: Record<string, string>): Promise<void> {
  h.emulator.model.addAccount(accountId, { accessToken: `tok-${accountId}` });
  for (const [path, content] of Object.entries(files)) h.emulator.model.writeFile(accountId, path, content, { clientModified: at });
  expect((await h.linkAccount(accountId, { accessToken: `tok-${accountId}` })).status).toBe(200);
}

describe('5xx on files/download', () => {
  it('two 500s on one file are retried inside the call and the sync completes without a backoff', async () => {
    const account = 'dbid:faults-dl-500';
    h.emulator.model.addAccount(account, { accessToken: `tok-${account}` });
    h.emulator.model.writeFile(account, '/posts/seed.md', '# Seed', { clientModified: at });
    expect((await h.linkAccount(account, { accessToken: `tok-${account}` })).status).toBe(200);
    await h.waitForIdle(account);

    h.emulator.model.writeFile(account, '/posts/flaky.md', '# Flaky\n\nserved after two 500s', { clientModified: at });
    h.emulator.model.writeFile(account, '/posts/fine.md', '# Fine', { clientModified: at });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/posts/Flaky.md', status: 500, times: 2 });
    const recorder = recordStates(account);
    await h.engine.notify([account]);
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/flaky.md') >= 3, 10_000, 'the third download attempt');
    await h.waitForIdle(account);
    recorder.stop();

    expect(h.emulator.stats.downloads(account, '/posts/flaky.md')).toBe(3);
    expect(h.emulator.stats.downloads(account, '/posts/fine.md')).toBe(1);
    expect(recorder.states).not.toContain('backoff');
    await expectConverged(account);
    expect((await readMirror(h.dataDir, account)).get('/posts/flaky.md')?.content).toBe('# Flaky\n\nserved after two 500s');
  });

  it('a 503 storm beyond the in-call attempts parks the actor in backoff (dropbox_unavailable); it resumes and converges', async () => {
    const account = 'dbid:faults-dl-storm';
    const files: Record<string, string> = {};
    for (let n = 0; n < 6; n++) files[`/posts/p${n}.md`] = `# Post ${n}`;
    h.emulator.faults.inject({ route: 'files/download', accountId: account, status: 503, times: Infinity });

    // Observed at the moment the step fails (an event), not by polling: the backoff is only
    // 500 ms long and a loaded machine could poll right past it.
    const failed = new Promise<{ kind: string; message: string; downloads: number[] }>((resolve) => {
      const off = (p: { accountId: string; kind: string; message: string }) => {
        if (p.accountId !== account) return;
        h.engine.events.off('stepFailed', off);
        resolve({ kind: p.kind, message: p.message, downloads: Array.from({ length: 6 }, (_, n) => h.emulator.stats.downloads(account, `/posts/p${n}.md`)) });
      };
      h.engine.events.on('stepFailed', off);
    });
    await linkWith(account, files);
    const parked = await failed;
    expect(parked.kind).toBe('dropbox_unavailable');
    expect(parked.message).toContain('503');
    expect(await h.engine.store.pendingCount(account)).toBe(6); // nothing dequeued: every file is still owed
    // Each file was tried exactly maxAttemptsPerCall (4) times before the step gave up.
    expect(parked.downloads).toEqual([4, 4, 4, 4, 4, 4]);
    expect(await readMirror(h.dataDir, account)).toEqual(new Map());
    const listings = h.emulator.stats.calls(account, 'files/list_folder') + h.emulator.stats.calls(account, 'files/list_folder/continue');

    // Dropbox recovers; the backoff deadline (500 ms, real time) passes and the downloads resume.
    h.emulator.faults.clear();
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/p0.md') > 4, 10_000, 'the downloads to resume');
    await h.waitForIdle(account);
    await expectConverged(account);
    // Before retrying the downloads it listed once more from the committed cursor (continue, not a
    // full listing: the queued files were not listed again).
    expect(h.emulator.stats.calls(account, 'files/list_folder/continue')).toBe(1);
    expect(h.emulator.stats.calls(account, 'files/list_folder') + h.emulator.stats.calls(account, 'files/list_folder/continue')).toBe(listings + 1);
  });
});

describe('a large download', () => {
  // Over WHOLE_BODY_DEADLINE_BYTES (1 MiB): the deadline is for each chunk, not the whole body.
  const large = `# Large\n\n${'0123456789abcdef'.repeat(96 * 1024)}`; // 1.5 MiB

  it('that keeps arriving is not cut, though it takes longer than the call deadline', async () => {
    const account = 'dbid:faults-dl-slow-link';
    // 12 chunks of 128 KiB, one every 200 ms: about 2.2 s in all, against a 1 s deadline.
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/video.md', dribble: { chunkBytes: 128 * 1024, intervalMs: 200 } });
    const started = Date.now();
    await linkWith(account, { '/video.md': large });
    await h.waitForIdle(account);
    expect(Date.now() - started).toBeGreaterThan(2 * CALL_TIMEOUT_MS);
    expect(h.emulator.stats.downloads(account, '/video.md')).toBe(1);
    await expectConverged(account);
  }, 60_000);

  it('that stops arriving is cut by the deadline, retried, and completed', async () => {
    const account = 'dbid:faults-dl-stall';
    // The first chunk, then nothing for longer than the deadline.
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/video.md', dribble: { chunkBytes: 256 * 1024, intervalMs: 60_000 } });
    await linkWith(account, { '/video.md': large });
    await waitUntil(() => h.emulator.stats.downloads(account, '/video.md') >= 2, 30_000, 'the retry after the stall');
    await h.waitForIdle(account);
    expect(h.emulator.stats.downloads(account, '/video.md')).toBe(2);
    await expectConverged(account);
  }, 60_000);
});

describe('a hanging download', () => {
  it('is cut by the call deadline, retried, and completed', async () => {
    const account = 'dbid:faults-dl-hang';
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/slow/stuck.md', hang: true });
    const started = Date.now();
    await linkWith(account, { '/slow/stuck.md': '# Stuck\n\nonce', '/quick.md': '# Quick' });
    // Generous: under a full parallel suite on 2 cores the event loop can lag by seconds.
    await waitUntil(() => h.emulator.stats.downloads(account, '/slow/stuck.md') >= 2, 30_000, 'the retry after the deadline').catch(async (error: Error) => {
      throw new Error(`${error.message}; status ${JSON.stringify(await h.status(account))}, downloads ${JSON.stringify(h.emulator.stats.downloadsByPath(account))}, faults left ${h.emulator.faults.pending()}`);
    });
    // The retry came only after the deadline of the hung call.
    expect(Date.now() - started).toBeGreaterThanOrEqual(CALL_TIMEOUT_MS - 50);
    await h.waitForIdle(account);
    expect(h.emulator.stats.downloads(account, '/slow/stuck.md')).toBe(2);
    expect(h.emulator.faults.pending()).toBe(0);
    await expectConverged(account);
  }, 60_000);
});

describe('bad bytes', () => {
  it('a corrupt download (content_hash mismatch) is fetched again and only the right bytes are written', async () => {
    const account = 'dbid:faults-dl-corrupt';
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/posts/c.md', corrupt: true });
    await linkWith(account, { '/posts/c.md': '# Corrupt once\n\nthe real text', '/posts/d.md': '# Fine' });
    await h.waitForIdle(account);
    expect(h.emulator.stats.downloads(account, '/posts/c.md')).toBe(2);
    await expectConverged(account);
    expect((await readMirror(h.dataDir, account)).get('/posts/c.md')?.content).toBe('# Corrupt once\n\nthe real text');
  });

  it('persistently corrupt bytes never reach the mirror: the old file stays, the step backs off (content_mismatch), then converges', async () => {
    const account = 'dbid:faults-dl-corrupt-storm';
    await linkWith(account, { '/posts/e.md': '# Edited v1' });
    await h.waitForIdle(account);

    h.emulator.model.writeFile(account, '/posts/e.md', '# Edited v2', { clientModified: at });
    h.emulator.model.writeFile(account, '/posts/brand-new.md', '# Brand new', { clientModified: at });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/posts/e.md', corrupt: true, times: Infinity });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/posts/brand-new.md', corrupt: true, times: Infinity });
    await h.engine.notify([account]);
    await waitUntil(async () => (await h.status(account)).state === 'backoff', 10_000, 'the backoff');
    const parked = await h.status(account);
    expect(parked.lastError?.kind).toBe('content_mismatch');

    // While the bytes are bad: the old version is intact, the new file absent, no temp file left behind.
    const mirror = await readMirror(h.dataDir, account);
    expect(mirror.get('/posts/e.md')?.content).toBe('# Edited v1');
    expect(mirror.has('/posts/brand-new.md')).toBe(false);
    expect((await allNames(mirrorFolder(h.dataDir, account))).filter((n) => n.includes('mailroom-tmp'))).toEqual([]);
    expect((await allNames(stagingFolder(h.dataDir, account))).filter((n) => n.includes('brand-new'))).toEqual([]);
    const entry = (await h.engine.entries.list(account)).find((e) => e.path === '/posts/e.md');
    expect(entry?.title).toBe('Edited v1');
    expect((await h.engine.entries.list(account)).some((e) => e.path === '/posts/brand-new.md')).toBe(false);

    h.emulator.faults.clear();
    await waitUntil(() => h.emulator.stats.downloads(account, '/posts/brand-new.md') > 3, 10_000, 'the downloads to resume');
    await h.waitForIdle(account);
    await expectConverged(account);
    expect((await readMirror(h.dataDir, account)).get('/posts/e.md')?.content).toBe('# Edited v2');
  });

  it('a truncated download (connection dropped mid-body) is retried and completed', async () => {
    const account = 'dbid:faults-dl-truncate';
    const big = `# Big\n\n${'0123456789abcdef'.repeat(64 * 1024)}`; // ~1 MiB, so half of it really is on the wire
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/big.md', truncate: true });
    h.emulator.faults.inject({ route: 'files/download', accountId: account, path: '/small.md', truncate: true });
    await linkWith(account, { '/big.md': big, '/small.md': '# Small\n\ntext' });
    await h.waitForIdle(account);
    expect(h.emulator.stats.downloads(account, '/big.md')).toBe(2);
    expect(h.emulator.stats.downloads(account, '/small.md')).toBe(2);
    await expectConverged(account);
    const mirror = await readMirror(h.dataDir, account);
    expect(mirror.get('/big.md')?.content.length).toBe(big.length);
    expect((await allNames(join(mirrorFolder(h.dataDir, account)))).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('faults between the pages of a listing', () => {
  const listings = (accountId: string) => [h.emulator.stats.calls(accountId, 'files/list_folder'), h.emulator.stats.calls(accountId, 'files/list_folder/continue')];

  it('a 503 storm on list_folder/continue parks the actor in backoff; it resumes from the saved page, not from scratch', async () => {
    const account = 'dbid:faults-list-storm';
    const files: Record<string, string> = {};
    for (let n = 0; n < 250; n++) files[`/posts/${String(n).padStart(3, '0')}.md`] = `# Post ${n}`; // 3 pages of 100
    // Exactly maxAttemptsPerCall (4) failures: the in-call retries are exhausted once, then it works.
    h.emulator.faults.inject({ route: 'files/list_folder/continue', accountId: account, status: 503, times: 4 });
    await linkWith(account, files);
    await waitUntil(async () => (await h.status(account)).state === 'backoff', 10_000, 'the backoff');
    expect((await h.status(account)).lastError?.kind).toBe('dropbox_unavailable');
    expect(listings(account)).toEqual([1, 4]);

    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder/continue') > 4, 10_000, 'the listing to resume');
    await h.waitForIdle(account);
    // One list_folder (page 1) and then continues from its cursor: page 1 was not fetched again.
    expect(listings(account)).toEqual([1, 6]);
    expect(h.emulator.stats.downloads(account)).toBe(250);
    expect(h.emulator.stats.maxListingsInFlight(account)).toBe(1);
    await expectConverged(account);
  });

  it('a hanging list_folder/continue is cut by the call deadline and retried', async () => {
    const account = 'dbid:faults-list-hang';
    const files: Record<string, string> = {};
    for (let n = 0; n < 150; n++) files[`/posts/${String(n).padStart(3, '0')}.md`] = `# Post ${n}`;
    h.emulator.faults.inject({ route: 'files/list_folder/continue', accountId: account, hang: true });
    await linkWith(account, files);
    await waitUntil(() => h.emulator.stats.calls(account, 'files/list_folder/continue') >= 2, 10_000, 'the retried continue');
    await h.waitForIdle(account);
    expect(listings(account)).toEqual([1, 2]);
    expect(h.emulator.stats.maxListingsInFlight(account)).toBe(1); // the hung call was over before the retry
    await expectConverged(account);
  });
});
