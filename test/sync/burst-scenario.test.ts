import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { APP_SECRET, expectedMirror, readMirror, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * The scenario that broke the old system: a big folder arrives, and while the engine downloads it
 * the user edits, deletes and renames files and Dropbox sends dozens of webhooks. The engine must
 * end with an exact mirror, one entry per post, renamed posts keeping their ids, never two
 * listings at once, and a single follow-up listing for the whole burst.
 */
let h: Harness;
const account = 'dbid:burst';

beforeAll(async () => {
  // Latency on every call keeps the downloads going long enough for the burst to land mid-run.
  h = await startHarness({ emulator: { latencyMs: 5 } });
});
afterAll(async () => { await h.close(); });

const post = (n: number, version = 1) => `# Post ${n} v${version}\n\nBody of post ${n}, version ${version}.\n`;

describe('a big folder, edited while it downloads, with a webhook burst', () => {
  it('ends as an exact mirror with one entry per post and one follow-up listing', async () => {
    const model = h.emulator.model;
    model.addAccount(account, { accessToken: 'tok-burst' });
    for (let n = 0; n < 300; n++) model.writeFile(account, `/posts/${String(n).padStart(3, '0')}.md`, post(n));
    for (let n = 0; n < 50; n++) model.writeFile(account, `/assets/img-${n}.bin`, `binary ${n}`);
    expect((await h.linkAccount(account, { accessToken: 'tok-burst' })).status).toBe(200);
    await h.waitForIdle(account);
    const before = new Map((await h.engine.entries.list(account)).map((e) => [e.path, e]));
    expect(before.size).toBe(300);

    // Phase 2: 250 new files arrive, then changes land while they download.
    for (let n = 300; n < 550; n++) model.writeFile(account, `/posts/${String(n).padStart(3, '0')}.md`, post(n));
    const actor = h.engine.host.actor(account)!;
    const visited: string[] = [];
    const sub = actor.subscribe((s) => { if (visited.at(-1) !== s.value) visited.push(String(s.value)); });
    h.emulator.stats.resetStats();
    const webhook = () => sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 });
    expect((await webhook()).status).toBe(200);
    await waitUntil(() => actor.getSnapshot().value === 'downloading', 10_000, 'the download phase');

    for (let n = 0; n < 20; n++) model.writeFile(account, `/posts/${String(n).padStart(3, '0')}.md`, post(n, 2)); // edits
    for (let n = 20; n < 40; n++) model.remove(account, `/posts/${String(n).padStart(3, '0')}.md`); // deletes
    for (let n = 40; n < 60; n++) model.move(account, `/posts/${String(n).padStart(3, '0')}.md`, `/renamed/Post ${n}.md`); // renames
    model.remove(account, '/assets'); // a whole folder
    model.writeFile(account, '/posts/310.md', post(310, 2)); // an edit of a file still queued
    const deliveries = await Promise.all(Array.from({ length: 40 }, webhook));
    expect(deliveries.every((d) => d.status === 200)).toBe(true);
    expect(actor.getSnapshot().value).toBe('downloading'); // the burst really landed mid-download

    await h.waitForIdle(account, 60_000);
    sub.unsubscribe();

    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));

    const entries = await h.engine.entries.list(account);
    const posts = model.listTree(account).filter((i) => i.kind === 'file' && i.pathLower.endsWith('.md'));
    expect(entries.map((e) => e.path).sort()).toEqual(posts.map((p) => p.pathDisplay).sort());
    expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get('/posts/005.md')?.title).toBe('Post 5 v2');
    expect(byPath.get('/posts/310.md')?.title).toBe('Post 310 v2');
    for (let n = 40; n < 60; n++) {
      expect(byPath.get(`/renamed/Post ${n}.md`)?.id).toBe(before.get(`/posts/${String(n).padStart(3, '0')}.md`)?.id);
    }

    expect(h.emulator.stats.maxListingsInFlight(account)).toBe(1);
    // One run for the new files, exactly one follow-up for the whole burst.
    expect(visited.filter((s) => s === 'fetching')).toHaveLength(2);
    // Renames are moves on disk, not downloads.
    for (let n = 40; n < 60; n++) expect(h.emulator.stats.downloads(account, `/renamed/post ${n}.md`)).toBe(0);
  }, 90_000);
});
