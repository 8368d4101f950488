import { createHmac, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator } from '../../src/dropbox-emulator/server.js';
import { legacyUserId, sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';

type Received = { headers: IncomingHttpHeaders; body: Buffer };

/** A bare receiver that records raw bytes, answering with the queued statuses (then 200). */
let server: Server;
let url: string;
let received: Received[] = [];
let statuses: number[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = statuses.shift() ?? 200;
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});
beforeEach(() => {
  received = [];
  statuses = [];
});

function signatureValid(secret: string, { headers, body }: Received): boolean {
  const expected = Buffer.from(createHmac('sha256', secret).update(body).digest('hex'));
  const actual = Buffer.from(String(headers['x-dropbox-signature']));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

describe('webhook sender', () => {
  it('posts Dropbox’s exact body, signed with HMAC-SHA256 of the raw bytes', async () => {
    const delivery = await sendWebhook({ url, appSecret: 's3cret', accounts: ['dbid:AAA', 'dbid:BBB'], users: [1, 2] });
    expect(delivery).toEqual({ status: 200, attempts: 1, delivered: true });
    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request!.body.toString('utf8')).toBe('{"list_folder": {"accounts": ["dbid:AAA", "dbid:BBB"]}, "delta": {"users": [1, 2]}}');
    expect(request!.headers['content-type']).toBe('application/json');
    expect(request!.headers['x-dropbox-signature']).toMatch(/^[0-9a-f]{64}$/);
    expect(signatureValid('s3cret', request!)).toBe(true);
    expect(signatureValid('other', request!)).toBe(false);
  });

  it('derives stable legacy user ids when none are given', async () => {
    await sendWebhook({ url, appSecret: 's', accounts: ['dbid:AAA'] });
    expect(JSON.parse(received[0]!.body.toString()).delta.users).toEqual([legacyUserId('dbid:AAA')]);
  });

  it('retries any non-200 answer with backoff, and gives up after the configured attempts', async () => {
    statuses = [500, 204];
    const started = Date.now();
    const delivery = await sendWebhook({ url, appSecret: 's', accounts: ['dbid:A'], attempts: 4, baseDelayMs: 20 });
    expect(delivery).toEqual({ status: 200, attempts: 3, delivered: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(20 + 40);
    expect(received).toHaveLength(3);

    statuses = [503, 503];
    const failed = await sendWebhook({ url, appSecret: 's', accounts: ['dbid:A'], attempts: 2, baseDelayMs: 1 });
    expect(failed).toEqual({ status: 503, attempts: 2, delivered: false });
  });

  it('the emulator notifies automatically after model changes, batching accounts', async () => {
    const emulator = await startEmulator({ appSecret: 'auto-secret', autoWebhook: { url } });
    try {
      emulator.model.addAccount('dbid:AAX', { accessToken: 'x' });
      emulator.model.addAccount('dbid:AAY', { accessToken: 'y' });
      emulator.model.writeFile('dbid:AAX', '/a.txt', 'a');
      emulator.model.writeFile('dbid:AAY', '/b.txt', 'b');
      emulator.model.writeFile('dbid:AAX', '/c.txt', 'c');
      await emulator.flushWebhooks();
      expect(received).toHaveLength(1);
      expect(JSON.parse(received[0]!.body.toString()).list_folder.accounts).toEqual(['dbid:AAX', 'dbid:AAY']);
      expect(signatureValid('auto-secret', received[0]!)).toBe(true);
    } finally {
      await emulator.close();
    }
  });
});
