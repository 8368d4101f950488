import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { legacyUserId, webhookBody, webhookSignature } from '../../src/dropbox-emulator/webhook-sender.js';
import { APP_SECRET, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * What Dropbox (or anyone else) can send to /webhooks/dropbox, over a real socket: the
 * verification challenge, the signature check (before any parsing), malformed bodies and the
 * 1 MiB body limit. A refused notification must leave every account untouched.
 */
let h: Harness;
const account = 'dbid:verify';
const MiB = 1024 * 1024;

beforeAll(async () => {
  h = await startHarness();
  h.emulator.model.addAccount(account, { accessToken: `token-${account}` });
  h.emulator.model.writeFile(account, '/notes/a.md', '# A');
  expect((await h.linkAccount(account)).status).toBe(200);
  await h.waitForIdle(account);
});
afterAll(async () => { await h.close(); });

const hook = () => `${h.url}/webhooks/dropbox`;
const bodyFor = (accounts: string[]) => webhookBody(accounts, accounts.map(legacyUserId));

function post(body: string | Uint8Array<ArrayBuffer>, signature?: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(hook(), {
    method: 'POST',
    body,
    headers: { 'Content-Type': 'application/json', ...(signature === undefined ? {} : { 'X-Dropbox-Signature': signature }), ...headers },
  });
}

/** The mailbox's webhook counter: it moves only when a notification was accepted for the account. */
async function webhooksRecorded(accountId = account): Promise<number> {
  return (await h.engine.mailbox.read(accountId)).webhooks;
}

describe('GET /webhooks/dropbox (the verification challenge)', () => {
  it('echoes the challenge exactly, as text/plain with nosniff, without any signature', async () => {
    const response = await fetch(`${hook()}?challenge=${encodeURIComponent('abc123-XYZ_')}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain\b/);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await response.text()).toBe('abc123-XYZ_');
  });

  it('echoes a challenge holding HTML as inert text (no reflected XSS)', async () => {
    const challenge = '<script>alert(document.cookie)</script><img src=x onerror=alert(1)>&amp;"\'';
    const response = await fetch(`${hook()}?challenge=${encodeURIComponent(challenge)}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain\b/);
    expect(response.headers.get('content-type')).not.toMatch(/html/i);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await response.text()).toBe(challenge);
  });

  it('answers 400 when there is no challenge', async () => {
    const response = await fetch(hook());
    expect(response.status).toBe(400);
  });
});

describe('POST /webhooks/dropbox: the signature', () => {
  it('accepts Dropbox\'s exact bytes with the lowercase hex HMAC-SHA256 of them', async () => {
    const before = await webhooksRecorded();
    const body = bodyFor([account]);
    const response = await post(body, webhookSignature(APP_SECRET, body));
    expect(response.status).toBe(200);
    expect(await webhooksRecorded()).toBe(before + 1);
    await h.waitForIdle(account);
  });

  it.each([
    ['no signature header', (_body: string) => undefined],
    ['an empty signature', () => ''],
    ['a signature of the wrong length', (body: string) => webhookSignature(APP_SECRET, body).slice(0, 63)],
    ['a signature keyed with another secret', (body: string) => webhookSignature('not-the-app-secret', body)],
    ['a signature with one digit changed', (body: string) => {
      const good = webhookSignature(APP_SECRET, body);
      return (good[0] === '0' ? '1' : '0') + good.slice(1);
    }],
    ['a base64 signature of the right HMAC', (body: string) => Buffer.from(webhookSignature(APP_SECRET, body), 'hex').toString('base64')],
    ['a "sha256=" prefixed signature (GitHub style)', (body: string) => `sha256=${webhookSignature(APP_SECRET, body)}`],
    // Decision: Dropbox always sends lowercase hex and its reference code compares hexdigest()
    // strings exactly, so the canonical lowercase form is the only one accepted.
    ['the uppercase hex of the right HMAC', (body: string) => webhookSignature(APP_SECRET, body).toUpperCase()],
  ])('refuses %s with 403 and marks nothing dirty', async (_name, sign) => {
    const before = await webhooksRecorded();
    const body = bodyFor([account]);
    const response = await post(body, sign(body));
    expect(response.status).toBe(403);
    expect(await webhooksRecorded()).toBe(before);
    expect((await h.engine.mailbox.read(account)).dirty).toBe(false);
  });

  it('refuses a signature computed over re-serialised JSON (same data, different bytes)', async () => {
    const before = await webhooksRecorded();
    const sent = bodyFor([account]); // Dropbox's spacing: {"list_folder": {"accounts": [...]}, ...}
    const reserialised = JSON.stringify(JSON.parse(sent)); // what a framework would hand a handler
    expect(reserialised).not.toBe(sent);
    expect((await post(sent, webhookSignature(APP_SECRET, reserialised))).status).toBe(403);
    // And the converse: signed bytes, but other bytes on the wire.
    expect((await post(reserialised, webhookSignature(APP_SECRET, sent))).status).toBe(403);
    expect((await post(`${sent}\n`, webhookSignature(APP_SECRET, sent))).status).toBe(403);
    expect(await webhooksRecorded()).toBe(before);
  });

  it('checks the signature before parsing: unsigned garbage is 403, not 400', async () => {
    expect((await post('{not json', undefined)).status).toBe(403);
    expect((await post('{not json', 'f'.repeat(64))).status).toBe(403);
  });
});

describe('POST /webhooks/dropbox: signed but unusable bodies', () => {
  it.each([
    ['truncated JSON', '{"list_folder": {"accounts": ["dbid:verify"]'],
    ['an empty body', ''],
    ['not JSON at all', 'list_folder=dbid:verify'],
  ])('answers 400 for %s', async (_name, body) => {
    const before = await webhooksRecorded();
    expect((await post(body, webhookSignature(APP_SECRET, body))).status).toBe(400);
    expect(await webhooksRecorded()).toBe(before);
  });

  it('answers 400 for bytes that are not UTF-8', async () => {
    const body = Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]); // {"\xff\xfe":1}
    expect((await post(body, webhookSignature(APP_SECRET, body))).status).toBe(400);
  });

  it.each([
    ['a JSON array', '["dbid:verify"]'],
    ['a JSON string', '"dbid:verify"'],
    ['null', 'null'],
    ['accounts as a string', '{"list_folder": {"accounts": "dbid:verify"}}'],
    ['accounts holding numbers', '{"list_folder": {"accounts": [1, 2]}}'],
    ['accounts mixing strings and objects', '{"list_folder": {"accounts": ["dbid:verify", {"id": "x"}]}}'],
    ['list_folder as an array', '{"list_folder": ["dbid:verify"]}'],
    ['list_folder as null', '{"list_folder": null}'],
  ])('answers 400 for signed JSON of the wrong shape: %s', async (_name, body) => {
    const before = await webhooksRecorded();
    const response = await post(body, webhookSignature(APP_SECRET, body));
    expect(response.status).toBe(400);
    expect(await webhooksRecorded()).toBe(before);
  });
});

describe('POST /webhooks/dropbox: the 1 MiB body limit', () => {
  /** Sends the headers and one chunk, then waits: the answer must come before the rest of the body. */
  function partialRequest(headers: Record<string, string | number>, firstChunks: Buffer[]): Promise<{ status: number; bodyFinished: boolean }> {
    return new Promise((resolve, reject) => {
      let bodyFinished = false;
      const req = httpRequest(hook(), { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Dropbox-Signature': 'a'.repeat(64), ...headers } });
      req.on('response', (res: IncomingMessage) => {
        res.resume();
        resolve({ status: res.statusCode!, bodyFinished });
        req.destroy();
      });
      req.on('error', (error) => { if (!req.destroyed) reject(error); });
      for (const chunk of firstChunks) req.write(chunk);
      // Never end the request: a server that reads the whole body before answering hangs here until the test times out.
      setTimeout(() => { if (!req.destroyed) { bodyFinished = true; reject(new Error('no answer while the body was still unsent')); req.destroy(); } }, 5_000).unref();
    });
  }

  it('refuses a declared Content-Length over 1 MiB with 413 before the body is sent', async () => {
    const declared = 2 * MiB + 17;
    const result = await partialRequest({ 'Content-Length': declared }, [Buffer.alloc(64 * 1024, 0x20)]);
    expect(result).toEqual({ status: 413, bodyFinished: false });
  });

  it('refuses a chunked body (no Content-Length) once it passes 1 MiB, without waiting for its end', async () => {
    const chunks = Array.from({ length: 18 }, () => Buffer.alloc(64 * 1024, 0x20)); // 1.125 MiB, body never ended
    const result = await partialRequest({ 'Transfer-Encoding': 'chunked' }, chunks);
    expect(result).toEqual({ status: 413, bodyFinished: false });
  });

  it('refuses an oversized body even when it carries a valid signature, and keeps serving', async () => {
    const body = bodyFor([account]) + ' '.repeat(MiB);
    const before = await webhooksRecorded();
    const response = await post(body, webhookSignature(APP_SECRET, body));
    expect(response.status).toBe(413);
    // The unread rest of the body is still on the wire: the connection must not be reused.
    expect(response.headers.get('connection')).toBe('close');
    expect(await webhooksRecorded()).toBe(before);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });

  it('accepts a signed body of exactly 1 MiB', async () => {
    const head = bodyFor([account]);
    const body = head + ' '.repeat(MiB - Buffer.byteLength(head));
    expect(Buffer.byteLength(body)).toBe(MiB);
    const before = await webhooksRecorded();
    expect((await post(body, webhookSignature(APP_SECRET, body))).status).toBe(200);
    expect(await webhooksRecorded()).toBe(before + 1);
    await h.waitForIdle(account);
  });
});
