import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isValidWebhookSignature } from '../../src/http/webhook-signature.js';

const reference = (secret: string, body: Uint8Array) => createHmac('sha256', secret).update(body).digest('hex');

describe('isValidWebhookSignature', () => {
  const secret = 'app-secret';
  const body = Buffer.from('{"list_folder": {"accounts": ["dbid:a"]}}');
  const good = reference(secret, body);

  it('accepts the lowercase hex HMAC and nothing else', () => {
    expect(isValidWebhookSignature(body, good, secret)).toBe(true);
    expect(isValidWebhookSignature(body, good.toUpperCase(), secret)).toBe(false);
    expect(isValidWebhookSignature(body, `${good} `, secret)).toBe(false);
    expect(isValidWebhookSignature(body, good.slice(0, 63), secret)).toBe(false);
    expect(isValidWebhookSignature(body, undefined, secret)).toBe(false);
    expect(isValidWebhookSignature(body, '', secret)).toBe(false);
    for (let i = 0; i < 64; i++) {
      const flipped = good.slice(0, i) + (good[i] === '0' ? '1' : '0') + good.slice(i + 1);
      expect(isValidWebhookSignature(body, flipped, secret)).toBe(false);
    }
    // Same length, characters outside the hex range that collide when only low bits are compared.
    expect(isValidWebhookSignature(body, String.fromCharCode(...[...good].map((c) => c.charCodeAt(0) + 256)), secret)).toBe(false);
  });
});
