import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { legacyUserId, sendWebhook, webhookBody, webhookSignature } from '../../src/dropbox-emulator/webhook-sender.js';
import { accountKeys } from '../../src/redis/keys.js';
import { EngineProcess } from '../support/engine-process.js';
import { startProcessFixture, type ProcessFixture } from '../support/process-fixture.js';
import { APP_SECRET, expectedMirror, readMirror, waitUntil } from '../support/sync-harness.js';
import { storedActorState } from '../support/stored-actor.js';

/**
 * Graceful shutdown (SIGTERM) in the middle of a sync: webhooks get 503 while draining, the
 * process exits 0 promptly, its lease is given back at once (the TTL here is far longer than the
 * test, so only an explicit release lets the next process in), and the next process finishes.
 */
let fixture: ProcessFixture;
let redis: Redis;
let emulator: RunningEmulator;
let dataDir: string;
const account = 'dbid:shutdown';
const POSTS = 80;
const LEASE_TTL_MS = 60_000;

const childOf = (engine: EngineProcess): ChildProcess => (engine as unknown as { child: ChildProcess }).child;

/** Reads one HTTP response off a raw socket and returns its status code (0 if the socket died first). */
function responseStatus(socket: Socket): Promise<number> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    socket.on('close', () => resolve(0));
    socket.on('error', () => resolve(0));
  });
}

beforeAll(async () => {
  fixture = await startProcessFixture('shutdown');
  ({ redis, emulator, dataDir } = fixture);
});
afterAll(async () => { await fixture?.close(); });

describe('SIGTERM during a sync', () => {
  it('drains (503), exits 0 at once, releases the lease, and the next process finishes the sync', async () => {
    const k = accountKeys(account);
    emulator.model.addAccount(account, { accessToken: 'tok-shutdown' });
    for (let n = 0; n < POSTS; n++) emulator.model.writeFile(account, `/posts/${n}.md`, `# Post ${n}\n\ntext ${n}`);
    emulator.faults.setLatency(100, 'files/download');

    const env = { LEASE_TTL_MS: String(LEASE_TTL_MS), SWEEP_INTERVAL_MS: '200', ACCOUNT_DOWNLOAD_CONCURRENCY: '4' };
    const first = await fixture.startEngine(env);
    expect((await first.api(`/accounts/${account}`, { method: 'PUT', body: JSON.stringify({ accessToken: 'tok-shutdown' }) })).status).toBe(200);
    await waitUntil(() => emulator.stats.downloads(account) >= 12, 20_000, 'the first process to be downloading');
    const holder = await redis.get(k.lease);
    expect(holder).not.toBeNull();
    const fence = Number(await redis.hget(k.fence, 'fence'));

    // A webhook whose request is already on the wire when SIGTERM arrives (headers not finished,
    // so the server cannot count the connection idle and must let it complete).
    const body = webhookBody([account], [legacyUserId(account)]);
    const socket = connect(first.port, '127.0.0.1');
    await once(socket, 'connect');
    const status = responseStatus(socket);
    socket.write(`POST /webhooks/dropbox HTTP/1.1\r\nHost: 127.0.0.1:${first.port}\r\nContent-Type: application/json\r\n`);

    const child = first.childProcess!;
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const termAt = Date.now();
    child.kill('SIGTERM');
    await waitUntil(() => first.output.includes('"msg":"shutting down"'), 5_000, 'the first process to start draining');
    emulator.model.writeFile(account, '/posts/while-draining.md', '# Draining\n\nwritten during shutdown');
    socket.write(`X-Dropbox-Signature: ${webhookSignature(APP_SECRET, body)}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    expect(await status).toBe(503); // Dropbox retries it later, elsewhere
    socket.destroy();

    const [code, signal] = await exited;
    const exitMs = Date.now() - termAt;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(exitMs).toBeLessThan(5_000);
    expect(first.output).toContain('"msg":"stopped"');

    // The lease is gone right away (not left to expire in a minute); the work is still there.
    expect(await redis.get(k.lease)).toBeNull();
    expect(await storedActorState(redis, account)).toBe('downloading');
    expect(await redis.hget(k.mailbox, 'status')).toBe('running');
    expect(await redis.hlen(k.queue)).toBeGreaterThan(0);

    // The next process takes the account over at once and finishes it; Dropbox's retry of the
    // refused webhook reaches it.
    emulator.faults.setLatency(0, 'files/download');
    const startAt = Date.now();
    const second = await fixture.startEngine(env);
    expect((await sendWebhook({ url: `${second.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 })).status).toBe(200);
    await waitUntil(async () => {
      const [box, state, queued] = await Promise.all([redis.hgetall(k.mailbox), storedActorState(redis, account), redis.hlen(k.queue)]);
      return box.status === 'idle' && box.dirty !== '1' && state === 'idle' && queued === 0 && (await readMirror(dataDir, account)).has('/posts/while-draining.md');
    }, 15_000, 'the second process to finish the sync');
    expect(Date.now() - startAt).toBeLessThan(LEASE_TTL_MS / 2);
    // Exactly one new grant, held by the second process (the token it restored the actor with is
    // the current one): the first one's token is refused from now on.
    const granted = Number(await redis.hget(k.fence, 'fence'));
    expect(granted).toBeGreaterThan(fence);
    const restored = second.output.split('\n').filter((line) => line.includes('"msg":"restored"')).map((line) => JSON.parse(line) as { accountId: string; token: number });
    expect(restored.filter((line) => line.accountId === account).map((line) => line.token)).toEqual([granted]);
    expect(await redis.get(k.lease)).toMatch(new RegExp(`\\|${granted}$`));

    expect(await readMirror(dataDir, account)).toEqual(expectedMirror(emulator, account));
    const entries = Object.values(await redis.hgetall(k.entries)).map((raw) => JSON.parse(raw) as { id: string });
    expect(entries).toHaveLength(POSTS + 1);
    expect(new Set(entries.map((e) => e.id)).size).toBe(POSTS + 1);
    expect(await redis.hlen(k.entryIds)).toBe(POSTS + 1);
    expect(emulator.stats.maxListingsInFlight(account)).toBeLessThanOrEqual(1);
  }, 45_000);
});
