import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { legacyUserId, webhookBody, webhookSignature } from '../../src/dropbox-emulator/webhook-sender.js';
import { webhookRoutes, MAX_WEBHOOK_BYTES } from '../../src/http/webhook-routes.js';
import { silentLogger } from '../../src/logger.js';
import { APP_SECRET, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * The webhook route reads its body straight from Node's request stream. Over a raw socket, however
 * the bytes arrive (in pieces, chunked, cut off), the signature is checked over all of them, the
 * limit holds, and a body cut off by the client records nothing and leaves the server serving.
 */
let h: Harness;
const account = 'dbid:body';

/** The reasons of the refused webhooks the route reported, in order (what mailroom_webhooks_total counts). */
const refusals: string[] = [];

beforeAll(async () => {
  h = await startHarness();
  h.engine.events.on('webhook', ({ outcome, reason }) => { if (outcome === 'refused') refusals.push(reason ?? 'unknown'); });
  h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
  expect((await h.linkAccount(account)).status).toBe(200);
  await h.waitForIdle(account);
});
afterAll(async () => { await h.close(); });

const webhooksRecorded = async () => (await h.engine.mailbox.read(account)).webhooks;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function open(headers: Record<string, string | number | string[]>): { req: ClientRequest; answer: Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> } {
  const req = httpRequest(`${h.url}/webhooks/dropbox`, { method: 'POST', headers });
  const answer = new Promise<{ status: number; headers: IncomingMessage['headers']; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  return { req, answer };
}

/** Writes `body` in `pieces` writes, `gapMs` apart, so the server sees several reads. */
async function writeInPieces(req: ClientRequest, body: Buffer, pieces: number, gapMs: number): Promise<void> {
  const size = Math.ceil(body.length / pieces);
  for (let at = 0; at < body.length; at += size) {
    req.write(body.subarray(at, at + size));
    await sleep(gapMs);
  }
}

describe('POST /webhooks/dropbox: how the body arrives', () => {
  it('verifies a body that arrives in several pieces over all of its bytes', async () => {
    const body = Buffer.from(webhookBody([account], [legacyUserId(account)]));
    const before = await webhooksRecorded();
    const { req, answer } = open({ 'Content-Type': 'application/json', 'Content-Length': body.length, 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) });
    req.flushHeaders();
    await writeInPieces(req, body, 5, 20);
    req.end();
    expect((await answer).status).toBe(200);
    expect(await webhooksRecorded()).toBe(before + 1);
    await h.waitForIdle(account);
  });

  it('refuses a body whose last piece differs from the signed bytes', async () => {
    const body = Buffer.from(webhookBody([account], [legacyUserId(account)]));
    const sent = Buffer.from(body);
    sent[sent.length - 2] = 0x20; // the closing brace before the last one becomes a space
    const before = await webhooksRecorded();
    const { req, answer } = open({ 'Content-Type': 'application/json', 'Content-Length': sent.length, 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) });
    req.flushHeaders();
    await writeInPieces(req, sent, 4, 10);
    req.end();
    expect((await answer).status).toBe(403);
    expect(await webhooksRecorded()).toBe(before);
  });

  it('accepts a signed chunked body (no Content-Length) under the limit', async () => {
    const body = Buffer.from(webhookBody([account], [legacyUserId(account)]));
    const before = await webhooksRecorded();
    const { req, answer } = open({ 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) });
    await writeInPieces(req, body, 3, 10);
    req.end();
    expect((await answer).status).toBe(200);
    expect(await webhooksRecorded()).toBe(before + 1);
    await h.waitForIdle(account);
  });

  it('answers a chunked body past 1 MiB with 413 and Connection: close, and the next request is served', async () => {
    const before = await webhooksRecorded();
    const { req, answer } = open({ 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'X-Dropbox-Signature': 'a'.repeat(64) });
    req.on('error', () => {}); // the server may close while chunks are still being written
    for (let i = 0; i < 20; i++) req.write(Buffer.alloc(64 * 1024, 0x20)); // 1.25 MiB, never ended
    const result = await answer;
    req.destroy();
    expect(result.status).toBe(413);
    expect(result.headers.connection).toBe('close');
    expect(await webhooksRecorded()).toBe(before);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });

  it('records nothing for a body cut off by the client, and keeps serving', async () => {
    const body = Buffer.from(webhookBody([account], [legacyUserId(account)]));
    const before = await webhooksRecorded();
    const { req, answer } = open({ 'Content-Type': 'application/json', 'Content-Length': body.length, 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) });
    answer.catch(() => {}); // no answer: the client is gone
    req.on('error', () => {});
    req.flushHeaders();
    req.write(body.subarray(0, 20));
    await sleep(50); // paces the client: the route is then waiting for the rest of the body
    req.destroy();
    // A complete webhook right after is accepted. The cut-off connection closed before this one
    // opened, so once this one is recorded the cut-off one has been handled: exactly one counted.
    const signed = await fetch(`${h.url}/webhooks/dropbox`, { method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) } });
    expect(signed.status).toBe(200);
    expect(await webhooksRecorded()).toBe(before + 1);
    expect(refusals.at(-1)).toBe('aborted'); // counted (mailroom_webhooks_total), before the signed one
    await h.waitForIdle(account);
  });

  it('refuses a Content-Length no body can have with 400, counted as malformed', async () => {
    const { req, answer } = open({ 'Content-Type': 'application/json', 'Content-Length': '9007199254740993', 'X-Dropbox-Signature': 'a'.repeat(64) });
    req.on('error', () => {});
    req.flushHeaders();
    expect((await answer).status).toBe(400);
    req.destroy();
    expect(refusals.at(-1)).toBe('malformed');
  });

  it('refuses a repeated X-Dropbox-Signature header even when each copy is right', async () => {
    const body = Buffer.from(webhookBody([account], [legacyUserId(account)]));
    const signature = webhookSignature(APP_SECRET, body);
    const before = await webhooksRecorded();
    const { req, answer } = open({ 'Content-Type': 'application/json', 'Content-Length': body.length, 'X-Dropbox-Signature': [signature, signature] });
    req.end(body);
    expect((await answer).status).toBe(403);
    expect(await webhooksRecorded()).toBe(before);
  });
});

describe('the same route run without Node\'s request (app.request, another runtime): the web stream', () => {
  const routes = () => webhookRoutes({ engine: h.engine, appSecret: APP_SECRET, log: silentLogger });

  it('accepts a signed body and records it', async () => {
    const body = webhookBody([account], [legacyUserId(account)]);
    const before = await webhooksRecorded();
    const response = await routes().request('/', { method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) } });
    expect(response.status).toBe(200);
    expect(await webhooksRecorded()).toBe(before + 1);
    await h.waitForIdle(account);
  });

  it('refuses a streamed body past the limit with 413 without reading it to the end', async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 64 * 1024;
        controller.enqueue(new Uint8Array(64 * 1024));
      },
    });
    const response = await routes().request('/', { method: 'POST', body: endless, headers: { 'X-Dropbox-Signature': 'a'.repeat(64) }, duplex: 'half' } as RequestInit);
    expect(response.status).toBe(413);
    expect(pulled).toBeLessThan(MAX_WEBHOOK_BYTES + 4 * 64 * 1024);
  });
});
