import { createHmac, timingSafeEqual } from 'node:crypto';

const SIGNATURE = /^[0-9a-f]{64}$/;

/**
 * Dropbox signs the raw request body: X-Dropbox-Signature is the lowercase hex HMAC-SHA256 of the
 * exact bytes, keyed with the app secret. Checked before any parsing (re-serialised JSON would not
 * match), compared in constant time.
 */
export function isValidWebhookSignature(body: Uint8Array, signature: string | undefined, appSecret: string): boolean {
  if (!signature || !SIGNATURE.test(signature)) return false;
  const expected = createHmac('sha256', appSecret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}

/** The account ids of a notification body: `list_folder.accounts`; other keys are ignored. */
export function webhookAccounts(body: unknown): string[] | null {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return null;
  const listFolder = (body as { list_folder?: unknown }).list_folder;
  if (listFolder === undefined) return [];
  if (!listFolder || typeof listFolder !== 'object' || Array.isArray(listFolder)) return null;
  const accounts = (listFolder as { accounts?: unknown }).accounts;
  if (accounts === undefined) return [];
  if (!Array.isArray(accounts) || !accounts.every((a) => typeof a === 'string')) return null;
  return accounts as string[];
}
