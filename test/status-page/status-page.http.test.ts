import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import { getEventListeners } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LINKED_ACCOUNTS_KEY } from '../../src/redis/keys.js';
import { statusPageRoutes, type StatusPageOptions, type StatusPageRoutes } from '../../src/status-page/routes.js';
import { ADMIN_TOKEN, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/** The status page's HTTP surface through the real app: who may open what, and what a stream carries. */
let h: Harness;
const logLines: string[] = [];

beforeAll(async () => {
  h = await startHarness({ logLines });
});
afterAll(async () => {
  await h.close();
});

const ticket = async (token = ADMIN_TOKEN) => fetch(`${h.url}/events/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });

/** Reads SSE text from a response until `until` holds for what arrived, then stops reading. */
async function readStream(response: Response, until: (text: string) => boolean, timeoutMs = 5_000): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const deadline = Date.now() + timeoutMs;
  try {
    while (!until(text)) {
      if (Date.now() > deadline) throw new Error(`stream did not deliver in time; got: ${text}`);
      const { value, done } = await Promise.race([reader.read(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`stream stalled; got: ${text}`)), timeoutMs))]);
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return text;
}

/** The status page's routes on a server of their own, with the hub in reach. */
async function serveRoutes(options: Omit<StatusPageOptions, 'engine' | 'adminToken'>): Promise<{ routes: StatusPageRoutes; server: Server; url: string }> {
  const routes = statusPageRoutes({ engine: h.engine, adminToken: ADMIN_TOKEN, ...options });
  const server = await new Promise<Server>((resolve) => {
    const created = serve({ fetch: routes.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
  });
  return { routes, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function stopServing(routes: StatusPageRoutes, server: Server): Promise<void> {
  routes.statusHub!.stop();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('GET /', () => {
  it('serves the page to anyone, with no token or account data in it, under a strict CSP', async () => {
    const response = await fetch(`${h.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/html/);
    expect(response.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const html = await response.text();
    expect(html).toContain('id="login-form"');
    expect(html).not.toContain(ADMIN_TOKEN);
  });
});

describe('POST /events/ticket', () => {
  it('needs the admin token and returns a ticket that is not the token', async () => {
    expect((await fetch(`${h.url}/events/ticket`, { method: 'POST' })).status).toBe(401);
    expect((await ticket('wrong-token')).status).toBe(401);
    const response = await ticket();
    expect(response.status).toBe(200);
    const body = (await response.json()) as { ticket: string; expiresInMs: number };
    expect(body.ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(body.ticket).not.toContain(ADMIN_TOKEN);
    expect(body.expiresInMs).toBeGreaterThan(25_000);
    expect(body.expiresInMs).toBeLessThanOrEqual(30_000);
  });
});

describe('GET /events', () => {
  it('is refused (401) without a ticket, with a made-up one, and with the admin token in its place', async () => {
    for (const query of ['', '?ticket=', '?ticket=made-up', `?ticket=${ADMIN_TOKEN}`]) {
      const response = await fetch(`${h.url}/events${query}`);
      expect(response.status, query).toBe(401);
      expect(response.headers.get('content-type')).toMatch(/json/);
    }
    // A bearer header does not open it either: only a ticket does.
    expect((await fetch(`${h.url}/events`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(401);
  });

  it('streams a snapshot of every linked account, and a used ticket cannot open a second stream', async () => {
    h.emulator.model.addAccount('dbid:http-1', { accessToken: 'token-dbid:http-1' });
    h.emulator.model.writeFile('dbid:http-1', '/a.md', '# a');
    expect((await h.linkAccount('dbid:http-1')).status).toBe(200);
    await h.waitForIdle('dbid:http-1');

    const { ticket: t } = (await (await ticket()).json()) as { ticket: string };
    const response = await fetch(`${h.url}/events?ticket=${t}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await readStream(response, (s) => s.includes('event: snapshot') && s.includes('\n\n', s.indexOf('event: snapshot')));
    expect(text.startsWith('retry: ')).toBe(true);
    const data = text.split('\n').find((l) => l.startsWith('data: '))!;
    const snapshot = JSON.parse(data.slice(6)) as { type: string; accounts: { accountId: string; state: string; lastSyncedAt: string | null }[] };
    expect(snapshot.type).toBe('snapshot');
    expect(snapshot.accounts).toContainEqual(expect.objectContaining({ accountId: 'dbid:http-1', state: 'idle', dirty: false, pending: 0, lastError: null }));
    expect(snapshot.accounts.find((a) => a.accountId === 'dbid:http-1')!.lastSyncedAt).not.toBeNull();

    const again = await fetch(`${h.url}/events?ticket=${t}`);
    expect(again.status).toBe(401);
    await again.body?.cancel();
  });

  it('opens a stream at another process than the one that issued the ticket, once; an expired ticket opens none', async () => {
    const peer = await h.startPeer({ ownerId: 'status-ticket-peer' });
    const issue = async () => ((await (await ticket()).json()) as { ticket: string }).ticket;
    const t = await issue();
    // Only its hash is in Redis, with the ticket's lifetime.
    const stored = await h.redis.keys('mr:status:ticket:*');
    expect(stored.some((key) => key.includes(t))).toBe(false);
    expect(stored.length).toBeGreaterThan(0);
    const opened = await fetch(`${peer.url}/events?ticket=${t}`);
    expect(opened.status).toBe(200);
    await opened.body?.cancel();
    const again = await fetch(`${h.url}/events?ticket=${t}`);
    expect(again.status).toBe(401);
    await again.body?.cancel();

    const late = await issue();
    for (const key of await h.redis.keys('mr:status:ticket:*')) await h.redis.pexpire(key, 1);
    await waitUntil(async () => (await h.redis.keys('mr:status:ticket:*')).length === 0, 2_000, 'the ticket to expire');
    const expired = await fetch(`${peer.url}/events?ticket=${late}`);
    expect(expired.status).toBe(401);
    await expired.body?.cancel();
  });

  it("an account's status fingerprint holds still while its status does, and moves with it", async () => {
    const account = 'dbid:status-fingerprint';
    await h.linkSynced(account, { '/a.md': '# A' });
    const fingerprint = () => h.engine.statusFingerprint(account);
    const first = await fingerprint();
    expect(await fingerprint()).toBe(first);
    // A webhook (dirty), then the run it starts (states saved, the last sync moves).
    h.emulator.model.writeFile(account, '/b.md', '# B');
    const before = await h.engine.status(account);
    await h.syncChanges(account);
    expect(await h.engine.status(account)).not.toEqual(before);
    const after = await fingerprint();
    expect(after).not.toBe(first);
    expect(await fingerprint()).toBe(after);
  });

  it('never writes the admin token or a ticket to the log', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(ADMIN_TOKEN);
  });
});

describe('a stream', () => {
  let server: Server;
  let url: string;
  let routes: StatusPageRoutes;

  beforeAll(async () => {
    // The same routes on a server of their own, with a fast heartbeat and the hub in reach.
    ({ routes, server, url } = await serveRoutes({ hub: { heartbeatMs: 30 } }));
  });
  afterAll(async () => stopServing(routes, server));

  it('carries heartbeats and live updates, and is cleaned up when the client goes away', async () => {
    const { ticket: t } = (await (await fetch(`${url}/events/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { ticket: string };
    const controller = new AbortController();
    const response = await fetch(`${url}/events?ticket=${t}`, { signal: controller.signal });
    expect(routes.statusHub!.clientCount).toBe(1);
    h.emulator.model.addAccount('dbid:http-2', { accessToken: 'token-dbid:http-2' });
    h.emulator.model.writeFile('dbid:http-2', '/b.md', '# b');
    expect((await h.linkAccount('dbid:http-2')).status).toBe(200);
    const text = await readStream(response, (s) => /: heartbeat/.test(s) && /"to":"idle"/.test(s) && /"accountId":"dbid:http-2"[^\n]*"progressText":"1 \/ 1 files/.test(s));
    expect(text).toMatch(/event: transition\ndata: \{"type":"transition"[^\n]*"accountId":"dbid:http-2","from":"idle","to":"fetching"/);
    controller.abort();
    await waitUntil(() => routes.statusHub!.clientCount === 0, 5_000, 'the hub to drop the closed stream');
  });
});

describe('streams and the server around them', () => {
  let server: Server;
  let url: string;
  let routes: StatusPageRoutes;
  const closing = new AbortController();

  beforeAll(async () => {
    // No heartbeat or refresh of their own: only what the test broadcasts.
    ({ routes, server, url } = await serveRoutes({ closing: closing.signal, hub: { heartbeatMs: 600_000, refreshIntervalMs: 600_000 } }));
  });
  afterAll(async () => stopServing(routes, server));

  const newTicket = async () =>
    ((await (await fetch(`${url}/events/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { ticket: string }).ticket;

  it('a client that stops reading is dropped once a MiB waits for it, instead of being buffered without end', async () => {
    // Opens its stream, reads the first bytes, then never reads again (a stalled proxy, a frozen tab).
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`GET /events?ticket=${await newTicket()} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await new Promise<void>((resolve) => socket.once('data', () => { socket.pause(); resolve(); }));
    await waitUntil(() => routes.statusHub!.clientCount === 1, 5_000, 'the stream to be open');

    const accountId = `dbid:${'x'.repeat(120)}`;
    let sent = 0;
    // About 200 bytes a transition: 100,000 of them are 20 MB, far past what the socket takes.
    while (routes.statusHub!.clientCount > 0 && sent < 100_000) {
      for (let i = 0; i < 1_000; i++) h.engine.events.report('state', { accountId, from: 'downloading', to: 'finishing', durationMs: i });
      sent += 1_000;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(routes.statusHub!.clientCount).toBe(0);
    expect(sent).toBeLessThan(100_000);
    socket.destroy();
  });

  it('every stream ends when the server shuts down, so the server can close', async () => {
    const response = await fetch(`${url}/events?ticket=${await newTicket()}`);
    expect(response.status).toBe(200);
    await waitUntil(() => routes.statusHub!.clientCount === 1, 5_000, 'the stream to be open');
    closing.abort();
    await readStream(response, () => false); // returns when the stream ends
    expect(routes.statusHub!.clientCount).toBe(0);
    await new Promise<void>((resolve) => server.close(() => resolve())); // no connection holds it
    expect((await fetch(`${url}/`).catch((error: Error) => error)) instanceof Error).toBe(true);
  });
});

describe('a stream that cannot open', () => {
  it('a snapshot that cannot be read answers 503 and leaves nothing behind on the shutdown signal', async () => {
    const closing = new AbortController();
    const { routes, server, url } = await serveRoutes({ closing: closing.signal, hub: { heartbeatMs: 600_000, refreshIntervalMs: 600_000 } });
    // The linked accounts cannot be read (WRONGTYPE), while tickets still can: the snapshot fails.
    const backup = `${LINKED_ACCOUNTS_KEY}:backup-${Date.now()}`;
    const hadAccounts = (await h.redis.exists(LINKED_ACCOUNTS_KEY)) === 1;
    if (hadAccounts) await h.redis.rename(LINKED_ACCOUNTS_KEY, backup);
    await h.redis.set(LINKED_ACCOUNTS_KEY, 'not a set');
    try {
      for (let i = 0; i < 20; i++) {
        const { ticket } = (await (await fetch(`${url}/events/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { ticket: string };
        const response = await fetch(`${url}/events?ticket=${ticket}`);
        expect(response.status).toBe(503);
        expect(await response.json()).toMatchObject({ error: 'unavailable' });
      }
      // Each failed open used to leave its listener (and its stream) on the server's shutdown signal.
      expect(getEventListeners(closing.signal, 'abort')).toHaveLength(0);
      expect(routes.statusHub!.clientCount).toBe(0);
    } finally {
      await h.redis.del(LINKED_ACCOUNTS_KEY);
      if (hadAccounts) await h.redis.rename(backup, LINKED_ACCOUNTS_KEY);
      await stopServing(routes, server);
    }
  });
});

describe('HEAD /events', () => {
  it('opens no stream: a HEAD (curl -I, a monitor) does not hold a place among the streams for good', async () => {
    const { routes, server, url } = await serveRoutes({ maxStreams: 2, hub: { heartbeatMs: 600_000, refreshIntervalMs: 600_000 } });
    const newTicket = async () =>
      ((await (await fetch(`${url}/events/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { ticket: string }).ticket;
    try {
      const heads = [];
      for (let i = 0; i < 2; i++) heads.push(await fetch(`${url}/events?ticket=${await newTicket()}`, { method: 'HEAD' }));
      // The page still gets its stream (it was refused 503 busy: each HEAD held a stream nobody reads).
      const response = await fetch(`${url}/events?ticket=${await newTicket()}`);
      expect(response.status).toBe(200);
      await response.body!.cancel();
      for (const head of heads) {
        expect(head.status).toBe(404);
        expect(head.headers.get('content-type')).toMatch(/^application\/json/);
      }
    } finally {
      await stopServing(routes, server);
    }
  });
});

describe('maxStreams', () => {
  it('holds when many streams open at once: those past it are refused 503, not all let in while the first read their snapshot', async () => {
    const { routes, server, url } = await serveRoutes({ maxStreams: 2, hub: { heartbeatMs: 600_000, refreshIntervalMs: 600_000 } });
    try {
      const tickets = await Promise.all(
        Array.from({ length: 6 }, async () =>
          ((await (await fetch(`${url}/events/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { ticket: string }).ticket),
      );
      const responses = await Promise.all(tickets.map((ticket) => fetch(`${url}/events?ticket=${ticket}`)));
      expect(responses.map((r) => r.status).sort()).toEqual([200, 200, 503, 503, 503, 503]);
      expect(routes.statusHub!.clientCount).toBe(2);
      for (const response of responses) await response.body?.cancel();
    } finally {
      await stopServing(routes, server);
    }
  });
});
