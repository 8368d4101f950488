import { createHash, createHmac } from 'node:crypto';

export type WebhookOptions = {
  url: string;
  appSecret: string;
  accounts: readonly string[];
  /** Legacy v1 numeric ids for `delta.users`; derived from the account ids when omitted. */
  users?: readonly number[];
  /** Dropbox gives an endpoint 10 s. */
  timeoutMs?: number;
  /** Total tries, first included. Dropbox keeps retrying for about ten minutes; tests want a few. */
  attempts?: number;
  /** Delay before the first retry, doubled for each one after. */
  baseDelayMs?: number;
  signal?: AbortSignal;
};

export type WebhookDelivery = {
  /** The last HTTP status received, or undefined if no attempt got an answer. */
  status: number | undefined;
  attempts: number;
  delivered: boolean;
};

/** A stable stand-in for the legacy numeric user id, so the same account always gets the same number. */
export function legacyUserId(accountId: string): number {
  return createHash('sha256').update(accountId).digest().readUInt32BE(0) >>> 1;
}

/** Byte-for-byte Dropbox's layout (spaces after ':' and ','), which matters because the signature covers it. */
export function webhookBody(accounts: readonly string[], users: readonly number[]): string {
  const list = (items: readonly (string | number)[]) => '[' + items.map((item) => JSON.stringify(item)).join(', ') + ']';
  return `{"list_folder": {"accounts": ${list(accounts)}}, "delta": {"users": ${list(users)}}}`;
}

export function webhookSignature(appSecret: string, body: string | Uint8Array): string {
  return createHmac('sha256', appSecret).update(body).digest('hex');
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** POSTs a signed notification like Dropbox does; anything but exactly 200 (or a timeout) is retried. */
export async function sendWebhook(options: WebhookOptions): Promise<WebhookDelivery> {
  const body = webhookBody(options.accounts, options.users ?? options.accounts.map(legacyUserId));
  const headers = {
    'Content-Type': 'application/json',
    'User-Agent': 'DropboxWebhooks/1.0',
    'X-Dropbox-Signature': webhookSignature(options.appSecret, body),
  };
  const attempts = Math.max(1, options.attempts ?? 5);
  const baseDelayMs = options.baseDelayMs ?? 1_000;
  let status: number | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const signals = [AbortSignal.timeout(options.timeoutMs ?? 10_000)];
    if (options.signal) signals.push(options.signal);
    try {
      const response = await fetch(options.url, { method: 'POST', headers, body, signal: AbortSignal.any(signals) });
      status = response.status;
      await response.arrayBuffer().catch(() => undefined);
      if (status === 200) return { status, attempts: attempt, delivered: true };
    } catch {
      // A timeout or refused connection counts as a failed delivery, as on Dropbox.
    }
    if (options.signal?.aborted || attempt === attempts) return { status, attempts: attempt, delivered: false };
    await delay(baseDelayMs * 2 ** (attempt - 1), options.signal);
  }
  return { status, attempts, delivered: false };
}
