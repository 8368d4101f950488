import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookSignature } from '../../src/dropbox-emulator/webhook-sender.js';
import { APP_SECRET, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * Anything can arrive at a public webhook URL. Whatever the body, headers and signature, the
 * answer is a deliberate 2xx/4xx (never a 5xx from a crash) and the server keeps answering.
 */
let h: Harness;
const linked = 'dbid:fuzz-linked';

beforeAll(async () => {
  h = await startHarness();
  h.emulator.model.addAccount(linked, { accessToken: `token-${linked}` });
  expect((await h.linkAccount(linked)).status).toBe(200);
  await h.waitForIdle(linked);
});
afterAll(async () => { await h.close(); });

const printable = (maxLength: number) => fc.string({ unit: 'grapheme-ascii', maxLength });
const accountId = fc.oneof(
  fc.constant(linked),
  fc.constantFrom('__proto__', 'constructor', 'toString', '', '{x}', 'a'.repeat(129), 'dbid:../../etc', 'mr:{x}:account'),
  fc.stringMatching(/^[A-Za-z0-9:_.-]{1,40}$/),
  fc.string({ maxLength: 20 }),
);
/** Bodies shaped like notifications, almost like them, or nothing like them. */
const body: fc.Arbitrary<Uint8Array<ArrayBuffer>> = fc.oneof(
  fc.record({ list_folder: fc.record({ accounts: fc.array(accountId, { maxLength: 6 }) }), delta: fc.record({ users: fc.array(fc.nat()) }) }, { requiredKeys: [] }).map((v) => Buffer.from(JSON.stringify(v))),
  fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? '')),
  fc.record({ list_folder: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.record({ accounts: fc.jsonValue({ maxDepth: 2 }) })) }).map((v) => Buffer.from(JSON.stringify(v))),
  fc.string({ unit: 'binary', maxLength: 200 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 300 }),
);

type Sign = { kind: 'valid' } | { kind: 'upper' } | { kind: 'none' } | { kind: 'value'; value: string };
const signature: fc.Arbitrary<Sign> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'valid' as const }) },
  fc.constant({ kind: 'upper' as const }),
  fc.constant({ kind: 'none' as const }),
  fc.stringMatching(/^[0-9a-f]{64}$/).map((value) => ({ kind: 'value' as const, value })),
  printable(100).map((value) => ({ kind: 'value' as const, value })),
);
const contentType = fc.option(fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1'), { nil: undefined });
const httpMethod = fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, fc.constantFrom('PUT', 'PATCH', 'GET'));
const extraHeaders = fc.dictionary(fc.stringMatching(/^x-[a-z-]{1,12}$/), printable(40), { maxKeys: 3 });

function signatureFor(sign: Sign, bytes: Uint8Array): string | undefined {
  switch (sign.kind) {
    case 'valid': return webhookSignature(APP_SECRET, bytes);
    case 'upper': return webhookSignature(APP_SECRET, bytes).toUpperCase();
    case 'none': return undefined;
    case 'value': return sign.value;
  }
}

describe('the webhook endpoint under random input', () => {
  it('never answers 5xx and never stops serving', async () => {
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(body, signature, contentType, extraHeaders, httpMethod, async (bytes, sign, type, extra, method) => {
        const headers: Record<string, string> = { ...extra };
        if (type !== undefined) headers['Content-Type'] = type;
        const sig = signatureFor(sign, bytes);
        if (sig !== undefined) headers['X-Dropbox-Signature'] = sig;
        const response = await fetch(`${h.url}/webhooks/dropbox`, { method, headers, ...(method === 'GET' ? {} : { body: bytes }) });
        await response.arrayBuffer();
        seen.set(response.status, (seen.get(response.status) ?? 0) + 1);
        expect(response.status).toBeLessThan(500);
        if (method === 'POST' && sign.kind !== 'valid') expect(response.status).toBe(403);
      }),
      { numRuns: 100 },
    );
    // The generators really reached past the signature check.
    expect(seen.get(200)).toBeGreaterThan(0);
    expect(seen.get(400)).toBeGreaterThan(0);
    expect(seen.get(403)).toBeGreaterThan(0);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    await h.waitForIdle(linked);
  });
});
