import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { accountMachine } from '../../machines/account.machine.js';
import type { AccountStatus } from '../../src/engine/engine.js';
import { EngineEvents } from '../../src/engine/engine-events.js';
import { layoutDiagram, renderDiagramSvg, stateGraph } from '../../src/status-page/diagram.js';
import { accountView, formatBytes, formatSse, progressText, sseComment, type StatusMessage } from '../../src/status-page/messages.js';
import { renderStatusPage } from '../../src/status-page/page.js';
import { ProgressTracker } from '../../src/status-page/progress-tracker.js';
import { StatusHub, type StatusSource } from '../../src/status-page/status-hub.js';
import { waitUntil } from '../support/fixtures.js';

describe('ProgressTracker', () => {
  it('resets at syncStarted, takes the total from queued, counts files and downloaded bytes', () => {
    let now = 1_000;
    const t = new ProgressTracker(() => now);
    expect(t.get('a')).toBeNull();
    t.syncStarted({ accountId: 'a' });
    expect(t.get('a')).toEqual({ startedAt: 1_000, finishedAt: null, total: null, done: 0, downloaded: 0, bytes: 0, failed: 0 });
    t.queued({ accountId: 'a', total: 3 });
    t.fileSynced({ accountId: 'a', path: '/x', bytes: 100, downloaded: true });
    t.fileSynced({ accountId: 'a', path: '/y', bytes: 50, downloaded: false });
    t.downloadFailed({ accountId: 'a', path: '/z', kind: 'dropbox_unavailable' });
    expect(t.get('a')).toMatchObject({ total: 3, done: 2, downloaded: 1, bytes: 100, failed: 1, finishedAt: null });
    now = 2_000;
    t.state({ accountId: 'a', from: 'finishing', to: 'idle', durationMs: 5 });
    expect(t.get('a')).toMatchObject({ done: 2, finishedAt: 2_000 });
    // The next run starts from zero.
    t.syncStarted({ accountId: 'a' });
    expect(t.get('a')).toMatchObject({ startedAt: 2_000, finishedAt: null, total: null, done: 0, bytes: 0 });
  });

  it('starts a new run on a dirty loop (finishing -> fetching) but not on a retry from backoff', () => {
    const t = new ProgressTracker(() => 0);
    t.syncStarted({ accountId: 'a' });
    t.queued({ accountId: 'a', total: 2 });
    t.fileSynced({ accountId: 'a', path: '/x', bytes: 1, downloaded: true });
    t.state({ accountId: 'a', from: 'downloading', to: 'backoff', durationMs: 1 });
    t.state({ accountId: 'a', from: 'backoff', to: 'downloading', durationMs: 1 });
    t.fileSynced({ accountId: 'a', path: '/y', bytes: 1, downloaded: true });
    expect(t.get('a')).toMatchObject({ total: 2, done: 2 });
    t.state({ accountId: 'a', from: 'finishing', to: 'fetching', durationMs: 1 });
    expect(t.get('a')).toMatchObject({ total: null, done: 0 });
  });

  it('follows a run it did not see start, keeps accounts apart, and never reports done > total', () => {
    const t = new ProgressTracker(() => 0);
    t.fileSynced({ accountId: 'b', path: '/x', bytes: 10, downloaded: true });
    t.queued({ accountId: 'c', total: 1 });
    t.fileSynced({ accountId: 'c', path: '/x', bytes: 1, downloaded: true });
    t.fileSynced({ accountId: 'c', path: '/y', bytes: 1, downloaded: true });
    expect(t.get('b')).toMatchObject({ total: null, done: 1, bytes: 10 });
    expect(t.get('c')).toMatchObject({ total: 2, done: 2 });
    t.forget('b');
    expect(t.get('b')).toBeNull();
    // get() hands out copies.
    t.get('c')!.done = 99;
    expect(t.get('c')!.done).toBe(2);
  });

  it('keeps every run going but only the most recent finished runs (passivated accounts cost nothing)', () => {
    let now = 0;
    const t = new ProgressTracker(() => now, 2);
    const run = (id: string) => {
      t.syncStarted({ accountId: id });
      t.fileSynced({ accountId: id, path: '/x', bytes: 1, downloaded: true });
    };
    for (const id of ['a', 'b', 'c', 'd']) run(id);
    expect(t.size).toEqual({ running: 4, finished: 0 });
    for (const id of ['a', 'b', 'c']) {
      now++;
      t.state({ accountId: id, from: 'finishing', to: 'idle', durationMs: 1 });
    }
    // 'a' finished first, so it went first; 'd' is still going and stays whatever the cap.
    expect(t.size).toEqual({ running: 1, finished: 2 });
    expect(t.get('a')).toBeNull();
    expect(t.get('b')).toMatchObject({ done: 1, finishedAt: 2 });
    expect(t.get('d')).toMatchObject({ done: 1, finishedAt: null });
    // A new run of a finished account leaves the finished ones; its end makes it the newest.
    run('b');
    expect(t.size).toEqual({ running: 2, finished: 1 });
    now++;
    t.state({ accountId: 'b', from: 'finishing', to: 'idle', durationMs: 1 });
    now++;
    t.state({ accountId: 'd', from: 'finishing', to: 'idle', durationMs: 1 });
    expect(t.get('c')).toBeNull();
    expect([t.get('b')?.finishedAt, t.get('d')?.finishedAt]).toEqual([4, 5]);
    expect(t.size).toEqual({ running: 0, finished: 2 });
  });
});

describe('messages', () => {
  it('frames one SSE event per message: event name, one data line of JSON, blank line', () => {
    const message: StatusMessage = { type: 'removed', at: '2026-01-01T00:00:00.000Z', accountId: 'line\nbreak' };
    const text = formatSse(message, 7);
    expect(text).toBe(`event: removed\nid: 7\ndata: ${JSON.stringify(message)}\n\n`);
    expect(text.split('\n').filter((l) => l.startsWith('data: '))).toHaveLength(1);
    expect(JSON.parse(text.split('\n')[2]!.slice(6))).toEqual(message);
  });

  it('writes comments EventSource ignores, on one line', () => {
    expect(sseComment('heartbeat')).toBe(': heartbeat\n\n');
    expect(sseComment('a\r\nb')).toBe(': a b\n\n');
  });

  it('prints progress as files done / total and bytes', () => {
    const base = { startedAt: 0, finishedAt: null, downloaded: 12, failed: 0 };
    expect(progressText(null)).toBe('no run seen yet');
    expect(progressText({ ...base, total: 80, done: 12, bytes: 12 * 1024 })).toBe('12 / 80 files · 12 KB');
    expect(progressText({ ...base, total: null, done: 3, bytes: 10 })).toBe('3 files · 10 B');
    expect(progressText({ ...base, total: 5, done: 1, bytes: 0, failed: 2 })).toBe('1 / 5 files · 0 B · 2 failed');
    expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(5 * 1024 ** 2), formatBytes(3 * 1024 ** 5)]).toEqual(['0 B', '1023 B', '1.5 KB', '5.0 MB', '3072 TB']);
  });

  it('prefers the live actor state over the stored one in a view', () => {
    const status = statusOf('a', 'idle');
    expect(accountView(status, null, 'downloading')).toMatchObject({ accountId: 'a', state: 'downloading', progress: null, progressText: 'no run seen yet' });
    expect(accountView(status, null).state).toBe('idle');
  });
});

describe('diagram', () => {
  const graph = stateGraph(accountMachine);

  it('takes the states and transitions from the machine definition', () => {
    expect(graph.initial).toBe('idle');
    expect(graph.states).toEqual(['idle', 'fetching', 'applying', 'downloading', 'finishing', 'backoff', 'awaitingRelink']);
    const pairs = graph.edges.map((e) => `${e.source}>${e.target}`);
    for (const pair of ['idle>fetching', 'fetching>applying', 'applying>downloading', 'downloading>finishing', 'finishing>idle', 'finishing>fetching', 'downloading>backoff', 'backoff>applying', 'backoff>fetching', 'fetching>awaitingRelink', 'awaitingRelink>fetching']) {
      expect(pairs).toContain(pair);
    }
    expect(pairs).not.toContain('finishing>finishing'); // self-loops are not drawn
    expect(new Set(pairs).size).toBe(pairs.length);
    expect(graph.edges.find((e) => e.source === 'finishing' && e.target === 'fetching')!.labels).toEqual(['done finishRun [isDirty]']);
  });

  it('lays the happy path out on one row, backoff below it and awaitingRelink beside backoff, boxes never overlapping', () => {
    const layout = layoutDiagram(graph);
    const at = Object.fromEntries(layout.nodes.map((n) => [n.id, n]));
    expect(['idle', 'fetching', 'applying', 'downloading', 'finishing'].map((s) => [at[s]!.column, at[s]!.row])).toEqual([[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]]);
    expect([at.backoff!.column, at.backoff!.row]).toEqual([2.5, 1]);
    // Not under backoff: the lines from a lower row up to the spine would cross its box.
    expect([at.awaitingRelink!.column, at.awaitingRelink!.row]).toEqual([1.5, 1]);
    for (const a of layout.nodes) {
      expect(a.x).toBeGreaterThanOrEqual(0);
      expect(a.y).toBeGreaterThanOrEqual(0);
      expect(a.x + a.width).toBeLessThanOrEqual(layout.width);
      expect(a.y + a.height).toBeLessThanOrEqual(layout.height);
      for (const b of layout.nodes) {
        if (a === b) continue;
        const apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
        expect(apart, `${a.id} and ${b.id} overlap`).toBe(true);
      }
    }
    // Each pair of states is drawn once; a transition both ways gets two arrowheads.
    const backAndForth = layout.edges.find((e) => [e.source, e.target].sort().join() === 'applying,backoff')!;
    expect(backAndForth.both).toBe(true);
    expect(layout.edges.find((e) => e.source === 'idle' && e.target === 'fetching')!.both).toBe(false);
    expect(layoutDiagram(graph)).toEqual(layout);
  });

  it('renders an SVG with one group per state and no inline style (CSP)', () => {
    const svg = renderDiagramSvg(layoutDiagram(graph));
    for (const state of graph.states) expect(svg).toContain(`<g class="state" data-state="${state}">`);
    expect(svg).not.toMatch(/style=/);
    expect(svg.match(/<path class="edge"/g)).toHaveLength(layoutDiagram(graph).edges.length);
  });

  it('escapes state names', () => {
    const svg = renderDiagramSvg(layoutDiagram({ initial: 'a<b', states: ['a<b', 'c'], edges: [{ source: 'a<b', target: 'c', labels: ['x'] }] }));
    expect(svg).toContain('a&lt;b');
    expect(svg).not.toContain('a<b');
  });
});

describe('the page', () => {
  it('is self-contained, carries no secret, and allows only its own inline script and style', () => {
    const { html, contentSecurityPolicy } = renderStatusPage(accountMachine);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\//);
    expect(html).toContain('data-state="downloading"');
    expect(html).toContain('id="login-form"');
    expect(html).not.toMatch(/<input[^>]*\bname=/); // a stray form submission sends nothing
    expect(contentSecurityPolicy).toMatch(/default-src 'none'/);
    expect(contentSecurityPolicy).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(contentSecurityPolicy).not.toMatch(/unsafe/);
  });
});

function statusOf(accountId: string, state: string, extra: Partial<AccountStatus> = {}): AccountStatus {
  return { accountId, state, dirty: false, pending: 0, setAside: 0, setAsideFiles: [], folder: `/data/${accountId}`, lastSyncedAt: null, lastError: null, ...extra };
}

function fakeSource(statuses: Map<string, AccountStatus>, live: Map<string, string> = new Map()): StatusSource {
  return {
    events: new EngineEvents(),
    linkedCount: async () => statuses.size,
    // Two ids a page, as SSCAN hands out a large set in pieces.
    linkedIdPages: async function* (pageSize) {
      const ids = [...statuses.keys()];
      for (let i = 0; i < ids.length; i += Math.max(1, Math.min(pageSize, 2))) yield ids.slice(i, i + Math.max(1, Math.min(pageSize, 2)));
    },
    status: async (id) => statuses.get(id) ?? null,
    fingerprint: async (id) => JSON.stringify(statuses.get(id) ?? null),
    liveState: (id) => live.get(id),
  };
}

/** Parses what a client received into messages (comments as `{ comment }`). */
function parse(chunks: string[]): (StatusMessage | { comment: string })[] {
  return chunks
    .join('')
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      if (block.startsWith(': ')) return { comment: block.slice(2) };
      const data = block.split('\n').find((l) => l.startsWith('data: '))!;
      return JSON.parse(data.slice(6)) as StatusMessage;
    });
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('StatusHub', () => {
  it('sends a snapshot first, then state, progress and status changes as they happen', async () => {
    const statuses = new Map([['b', statusOf('b', 'idle')], ['a', statusOf('a', 'idle')]]);
    const live = new Map<string, string>();
    const source = fakeSource(statuses, live);
    const hub = new StatusHub(source, { settleMs: 5, progressIntervalMs: 5, refreshIntervalMs: 60_000 }).start();
    const received: string[] = [];
    const disconnect = await hub.connect({ send: (c) => received.push(c) });
    expect(hub.clientCount).toBe(1);
    const [snapshot] = parse(received) as [Extract<StatusMessage, { type: 'snapshot' }>];
    expect(snapshot.type).toBe('snapshot');
    expect(snapshot.accounts.map((a) => a.accountId)).toEqual(['a', 'b']);

    received.length = 0;
    const events = source.events;
    live.set('a', 'fetching');
    events.report('state', { accountId: 'a', from: 'idle', to: 'fetching', durationMs: 3 });
    events.report('syncStarted', { accountId: 'a' });
    live.set('a', 'downloading');
    events.report('queued', { accountId: 'a', total: 80 });
    for (let i = 0; i < 12; i++) events.report('fileSynced', { accountId: 'a', path: `/f${i}`, bytes: 1024, downloaded: true });
    await tick(20);
    const messages = parse(received);
    expect(messages[0]).toMatchObject({ type: 'transition', accountId: 'a', from: 'idle', to: 'fetching', durationMs: 3 });
    expect(messages[1]).toMatchObject({ type: 'account', account: { accountId: 'a', state: 'fetching' } });
    const accounts = messages.filter((m): m is Extract<StatusMessage, { type: 'account' }> => 'type' in m && m.type === 'account');
    // Twelve fileSynced events coalesce into one update.
    expect(accounts.filter((m) => m.account.progress?.done === 12)).toHaveLength(1);
    expect(accounts.at(-1)!.account).toMatchObject({ state: 'downloading', progress: { total: 80, done: 12, bytes: 12 * 1024 }, progressText: '12 / 80 files · 12 KB' });

    // A webhook re-reads the accounts it names.
    received.length = 0;
    statuses.set('a', statusOf('a', 'idle', { dirty: true }));
    events.report('webhook', { outcome: 'accepted', accounts: 1, accountIds: ['a'] });
    await tick(20);
    expect(parse(received)).toContainEqual(expect.objectContaining({ type: 'account', account: expect.objectContaining({ accountId: 'a', dirty: true }) }));

    disconnect();
    disconnect();
    expect(hub.clientCount).toBe(0);
    received.length = 0;
    events.report('state', { accountId: 'a', from: 'downloading', to: 'finishing', durationMs: 1 });
    await tick(20);
    expect(received).toEqual([]);
    hub.stop();
  });

  it('a webhook re-reads only the accounts it names; the periodic refresh only those whose fingerprint moved, and reports removals', async () => {
    vi.useFakeTimers();
    try {
      const ids = ['a', 'b', 'c', 'd'];
      const statuses = new Map(ids.map((id) => [id, statusOf(id, 'idle')]));
      const source = fakeSource(statuses);
      const reads: string[] = [];
      const read = source.status;
      source.status = async (id) => (reads.push(id), read(id));
      const hub = new StatusHub(source, { settleMs: 1, refreshIntervalMs: 1_000 }).start();
      const received: string[] = [];
      const disconnect = await hub.connect({ send: (c) => received.push(c) });
      expect(reads.sort()).toEqual(ids); // the snapshot reads everything once

      reads.length = 0;
      statuses.set('b', statusOf('b', 'idle', { dirty: true }));
      source.events.report('webhook', { outcome: 'accepted', accounts: 2, accountIds: ['b', 'c'] });
      await vi.advanceTimersByTimeAsync(1);
      expect(reads.sort()).toEqual(['b', 'c']);

      // A refresh reads the whole status only of what moved since the snapshot or the webhook's read.
      reads.length = 0;
      await vi.advanceTimersByTimeAsync(1_000);
      expect(reads).toEqual(['b']); // moved since the snapshot (a webhook's read records no fingerprint)
      reads.length = 0;
      received.length = 0;
      statuses.set('d', statusOf('d', 'downloading', { pending: 3 }));
      statuses.delete('a');
      await vi.advanceTimersByTimeAsync(1_000);
      // 'a' is read too: an unlink moves the fingerprint, which is how a refresh notices it (it no
      // longer walks every linked id).
      expect(reads.sort()).toEqual(['a', 'd']);
      const after = parse(received);
      expect(after).toContainEqual(expect.objectContaining({ type: 'removed', accountId: 'a' }));
      expect(after).toContainEqual(expect.objectContaining({ type: 'account', account: expect.objectContaining({ accountId: 'd', pending: 3 }) }));
      reads.length = 0;
      await vi.advanceTimersByTimeAsync(1_000);
      expect(reads).toEqual([]);
      disconnect();
      hub.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a second page connecting tells the pages already open what its snapshot found changed', async () => {
    vi.useFakeTimers();
    try {
      const statuses = new Map([['a', statusOf('a', 'fetching')]]);
      const source = fakeSource(statuses);
      const hub = new StatusHub(source, { settleMs: 1, refreshIntervalMs: 1_000 }).start();
      const first: string[] = [];
      await hub.connect({ send: (c) => first.push(c) });
      first.length = 0;
      // A run in another process ends (no event here), then a second page opens before any refresh.
      statuses.set('a', statusOf('a', 'idle', { lastSyncedAt: '2026-01-01T00:00:00.000Z' }));
      await hub.connect({ send: () => {} });
      await vi.advanceTimersByTimeAsync(3_000);
      expect(parse(first)).toContainEqual(expect.objectContaining({ type: 'account', account: expect.objectContaining({ accountId: 'a', state: 'idle' }) }));
      hub.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('re-reads the queue length while files sync, at most once per statusReadIntervalMs', async () => {
    const statuses = new Map([['a', statusOf('a', 'downloading', { pending: 80 })]]);
    const source = fakeSource(statuses);
    let reads = 0;
    const read = source.status;
    source.status = async (id) => (reads++, read(id));
    const hub = new StatusHub(source, { settleMs: 1, progressIntervalMs: 1, statusReadIntervalMs: 40 }).start();
    const received: string[] = [];
    const disconnect = await hub.connect({ send: (c) => received.push(c) });
    reads = 0;
    for (let i = 0; i < 5; i++) {
      statuses.set('a', statusOf('a', 'downloading', { pending: 79 - i }));
      source.events.report('fileSynced', { accountId: 'a', path: `/f${i}`, bytes: 1, downloaded: true });
      await tick(5);
    }
    await tick(60);
    expect(reads).toBeGreaterThanOrEqual(1);
    expect(reads).toBeLessThanOrEqual(2);
    const last = parse(received).filter((m): m is Extract<StatusMessage, { type: 'account' }> => 'type' in m && m.type === 'account').at(-1)!;
    expect(last.account).toMatchObject({ pending: expect.any(Number), progress: { done: 5 } });
    disconnect();
    hub.stop();
  });

  it('reads the accounts a few at a time, and leaves out one whose read fails instead of failing the page', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `acct-${String(i).padStart(3, '0')}`);
    const statuses = new Map<string, AccountStatus>(ids.map((id) => [id, statusOf(id, 'idle')]));
    const source = fakeSource(statuses);
    let inFlight = 0;
    let most = 0;
    const errors: unknown[] = [];
    source.status = async (id) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await tick();
      inFlight--;
      if (id === 'acct-042') throw new Error('Command timed out');
      return statuses.get(id) ?? null;
    };
    const hub = new StatusHub(source, { refreshIntervalMs: 60_000, onError: (error) => errors.push(error) }).start();
    const received: string[] = [];
    const disconnect = await hub.connect({ send: (c) => received.push(c) });
    const snapshot = parse(received)[0] as { type: string; accounts: { accountId: string }[] };
    expect(snapshot.type).toBe('snapshot');
    expect(snapshot.accounts).toHaveLength(99);
    expect(snapshot.accounts.some((a) => a.accountId === 'acct-042')).toBe(false);
    expect(most).toBe(32);
    expect(errors).toHaveLength(1);
    disconnect();
    hub.stop();
  });

  it('tracks progress while no page is open, so a page opened mid-run sees it', async () => {
    const source = fakeSource(new Map([['a', statusOf('a', 'downloading')]]));
    const hub = new StatusHub(source).start();
    source.events.report('syncStarted', { accountId: 'a' });
    source.events.report('queued', { accountId: 'a', total: 4 });
    source.events.report('fileSynced', { accountId: 'a', path: '/x', bytes: 7, downloaded: true });
    const received: string[] = [];
    const disconnect = await hub.connect({ send: (c) => received.push(c) });
    expect(parse(received)[0]).toMatchObject({ type: 'snapshot', accounts: [{ accountId: 'a', progress: { total: 4, done: 1, bytes: 7 }, progressText: '1 / 4 files · 7 B' }] });
    disconnect();
    hub.stop();
  });

  it('sends heartbeats, and drops a client whose stream is gone', async () => {
    const source = fakeSource(new Map([['a', statusOf('a', 'idle')]]));
    const hub = new StatusHub(source, { heartbeatMs: 5 }).start();
    const good: string[] = [];
    let broken = false;
    await hub.connect({ send: (c) => good.push(c) });
    await hub.connect({
      send: () => {
        if (broken) throw new Error('gone');
      },
    });
    expect(hub.clientCount).toBe(2);
    broken = true;
    await tick(30);
    expect(hub.clientCount).toBe(1);
    expect(parse(good).some((m) => 'comment' in m && m.comment.startsWith('heartbeat'))).toBe(true);
    hub.stop();
    expect(hub.clientCount).toBe(0);
  });

  it('holds the account statuses only while a page is open', async () => {
    const statuses = new Map([['a', statusOf('a', 'idle')], ['b', statusOf('b', 'idle')]]);
    const source = fakeSource(statuses);
    let release!: () => void;
    const hub = new StatusHub(source, { settleMs: 1 }).start();
    const disconnect = await hub.connect({ send: () => {} });
    expect(hub.knownCount).toBe(2);
    // A read still in flight when the last page closes must not bring them back.
    const read = source.status;
    let inFlight: Promise<AccountStatus | null> | undefined;
    source.status = (id) => (inFlight = new Promise((resolve) => (release = () => resolve(read(id)))));
    source.events.report('stepFailed', { accountId: 'a', step: 'listChanges', kind: 'dropbox_unavailable', message: 'x' });
    await waitUntil(() => inFlight !== undefined, 1_000, 'the hub to ask for the changed status');
    disconnect();
    expect(hub.knownCount).toBe(0);
    release();
    await inFlight;
    await tick(); // the hub's continuation after the read
    expect(hub.knownCount).toBe(0);
    hub.stop();
  });

  it('shows at most maxAccounts: the recently active first, then the walk of the linked set, and says how many are linked', async () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const source = fakeSource(new Map(ids.map((id) => [id, statusOf(id, 'idle')])));
    const hub = new StatusHub(source, { maxAccounts: 3, refreshIntervalMs: 60_000 }).start();
    // Seen before any page opened: 'c' first, then 'e'.
    source.events.report('stepFailed', { accountId: 'c', step: 'listChanges', kind: 'dropbox_unavailable', message: 'x' });
    source.events.report('webhook', { outcome: 'accepted', accounts: 1, accountIds: ['e'] });
    const received: string[] = [];
    const disconnect = await hub.connect({ send: (c) => received.push(c) });
    const snapshot = parse(received)[0] as Extract<StatusMessage, { type: 'snapshot' }>;
    expect(snapshot.linked).toBe(6);
    // 'e' and 'c' (most recent first), then the first id of the walk that is not shown yet.
    expect(snapshot.accounts.map((a) => a.accountId)).toEqual(['a', 'c', 'e']);
    expect(hub.knownCount).toBe(3);
    disconnect();
    hub.stop();
  });

  it('an account that becomes active takes the slot of the least recently active one at rest, never of one whose run is going', async () => {
    vi.useFakeTimers();
    try {
      const ids = ['a', 'b', 'c', 'x', 'y'];
      const statuses = new Map(ids.map((id) => [id, statusOf(id, 'idle')]));
      const live = new Map<string, string>();
      const source = fakeSource(statuses, live);
      const hub = new StatusHub(source, { maxAccounts: 3, settleMs: 1, refreshIntervalMs: 60_000 }).start();
      const received: string[] = [];
      await hub.connect({ send: (c) => received.push(c) });
      const page = new Map<string, unknown>();
      const follow = () => {
        for (const m of parse(received.splice(0))) {
          if (!('type' in m)) continue;
          if (m.type === 'snapshot') for (const a of m.accounts) page.set(a.accountId, a);
          if (m.type === 'account') page.set(m.account.accountId, m.account);
          if (m.type === 'removed') page.delete(m.accountId);
        }
        return [...page.keys()].sort();
      };
      expect(follow()).toEqual(['a', 'b', 'c']);

      // 'a' starts a run and 'c' sees a webhook: 'b' is the least recently active at rest.
      const start = (id: string) => {
        live.set(id, 'fetching');
        statuses.set(id, statusOf(id, 'fetching'));
        source.events.report('state', { accountId: id, from: 'idle', to: 'fetching', durationMs: 1 });
      };
      start('a');
      source.events.report('webhook', { outcome: 'accepted', accounts: 1, accountIds: ['c'] });
      await vi.advanceTimersByTimeAsync(5);
      start('x');
      await vi.advanceTimersByTimeAsync(5);
      expect(follow()).toEqual(['a', 'c', 'x']);
      // Then 'c' goes, not 'a' nor 'x', whose runs are going.
      start('y');
      await vi.advanceTimersByTimeAsync(5);
      expect(follow()).toEqual(['a', 'x', 'y']);
      // Every shown account runs: a newcomer is not shown, and none of its messages are sent.
      start('b');
      await vi.advanceTimersByTimeAsync(5);
      expect(follow()).toEqual(['a', 'x', 'y']);
      expect(received.join('')).not.toContain('"accountId":"b"');
      expect(hub.knownCount).toBe(3);
      hub.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('gives an idle account\'s slot before that of an account awaiting a re-link, which an operator must see', async () => {
    vi.useFakeTimers();
    try {
      const statuses = new Map(['a', 'b', 'c', 'x'].map((id) => [id, statusOf(id, id === 'b' ? 'awaitingRelink' : 'idle')]));
      const source = fakeSource(statuses);
      const hub = new StatusHub(source, { maxAccounts: 3, settleMs: 1, refreshIntervalMs: 60_000 }).start();
      const received: string[] = [];
      await hub.connect({ send: (c) => received.push(c) });
      // 'a' and 'c' saw webhooks since; 'b' did not: it is the least recently active, and still stays.
      source.events.report('webhook', { outcome: 'accepted', accounts: 2, accountIds: ['a', 'c'] });
      await vi.advanceTimersByTimeAsync(5);
      source.events.report('webhook', { outcome: 'accepted', accounts: 1, accountIds: ['x'] });
      await vi.advanceTimersByTimeAsync(5);
      const removed = parse(received).flatMap((m) => ('type' in m && m.type === 'removed' ? [m.accountId] : []));
      expect(removed).toEqual(['a']);
      hub.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps a slot given to an account whose status is not read yet: it may be running in another process', async () => {
    vi.useFakeTimers();
    try {
      const statuses = new Map([['a', statusOf('a', 'fetching')], ['b', statusOf('b', 'idle')], ['c', statusOf('c', 'downloading')], ['d', statusOf('d', 'fetching')]]);
      const live = new Map([['a', 'fetching']]);
      const source = fakeSource(statuses, live);
      const hub = new StatusHub(source, { maxAccounts: 2, settleMs: 50, refreshIntervalMs: 60_000 }).start();
      const received: string[] = [];
      await hub.connect({ send: (c) => received.push(c) });
      // A webhook names 'c' (its run is going elsewhere): it takes idle 'b''s slot; its read waits for the settle.
      source.events.report('webhook', { outcome: 'accepted', accounts: 1, accountIds: ['c'] });
      // Before that read lands, 'd' starts a run here: no slot is at rest, so 'd' waits.
      live.set('d', 'fetching');
      source.events.report('state', { accountId: 'd', from: 'idle', to: 'fetching', durationMs: 1 });
      await vi.advanceTimersByTimeAsync(60);
      const messages = parse(received);
      expect(messages.flatMap((m) => ('type' in m && m.type === 'removed' ? [m.accountId] : []))).toEqual(['b']);
      expect(messages.some((m) => 'type' in m && m.type === 'account' && m.account.accountId === 'c' && m.account.state === 'downloading')).toBe(true);
      expect(received.join('')).not.toContain('"accountId":"d"');
      hub.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('holds no more accounts than maxAccounts in memory, whatever the number of accounts events name', async () => {
    vi.useFakeTimers();
    try {
      const statuses = new Map(Array.from({ length: 200 }, (_, i) => [`acct-${i}`, statusOf(`acct-${i}`, 'idle')] as const));
      const source = fakeSource(statuses);
      const hub = new StatusHub(source, { maxAccounts: 4, settleMs: 1, refreshIntervalMs: 10 }).start();
      await hub.connect({ send: () => {} });
      for (const id of statuses.keys()) {
        source.events.report('webhook', { outcome: 'accepted', accounts: 1, accountIds: [id] });
        source.events.report('fileSynced', { accountId: id, path: '/x', bytes: 1, downloaded: true });
      }
      await vi.advanceTimersByTimeAsync(200);
      const maps = hub as unknown as Record<'shown' | 'fingerprints' | 'readAt' | 'activity', Map<string, unknown>>;
      for (const name of ['shown', 'fingerprints', 'readAt', 'activity'] as const) expect(maps[name].size, name).toBeLessThanOrEqual(4);
      expect(hub.knownCount).toBe(4);
      hub.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('listens to the engine events only between start and stop', () => {
    const source = fakeSource(new Map());
    const emitter = source.events as EventEmitter;
    const before = emitter.listenerCount('fileSynced');
    const hub = new StatusHub(source).start().start();
    expect(emitter.listenerCount('fileSynced')).toBe(before + 1);
    hub.stop();
    expect(emitter.listenerCount('fileSynced')).toBe(before);
  });
});
