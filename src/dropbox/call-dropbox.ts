import type { Dropbox } from 'dropbox';
import type { DropboxSession } from './dropbox-session.js';
import { AbortedError, type Clock, sleep } from '../engine/clock.js';
import { redactSecrets } from '../observability/redact.js';
import { MAX_RETRY_DELAY_MS, SyncError, type FailureKind, type SyncFailure } from '../sync/sync-failure.js';

/**
 * The longest wait a server's Retry-After imposes: past it, one call asks again. Longer asks were
 * kept whole, beyond the backoff's deadline (the watchdog then restarted the actor), and one past
 * 2^31 ms made Node's timer fire at once, retrying in a loop.
 */
export const MAX_SERVER_WAIT_MS = MAX_RETRY_DELAY_MS;

/**
 * The longest wait inside a call. A longer one ends the call: the actor's backoff waits it out,
 * persisted (a restart keeps it) and without the account's run slot, which other accounts need.
 */
export const MAX_IN_CALL_WAIT_MS = 60_000;

export interface CallOptions {
  session: DropboxSession;
  clock: Clock;
  signal: AbortSignal;
  /** Attempts per call for 5xx, timeouts and network errors before the step fails. */
  maxAttempts?: number;
  /** Base of the in-call exponential backoff. */
  baseDelayMs?: number;
  random?: () => number;
  onRetry?: (info: { attempt: number; waitMs: number; reason: string }) => void;
  /** Every attempt, with how long it took and how it ended (metrics). */
  onCall?: (info: { route: string; durationMs: number; status: number | 'network' | 'timeout' }) => void;
}

/** A Dropbox endpoint error (HTTP 409) the caller handles itself: reset, not_found, … */
export class DropboxEndpointError extends Error {
  constructor(readonly tag: string, readonly summary: string, readonly body: unknown) {
    super(`Dropbox endpoint error: ${summary || tag}`);
    this.name = 'DropboxEndpointError';
  }
}

/**
 * Dropbox refused the request's input (HTTP 400; the body is plain text): sent again unchanged it
 * gets the same answer. A SyncError of kind `internal`, so a caller with nothing else to send
 * fails its step like any other error; list_folder/continue's caller lists from scratch instead.
 */
export class DropboxBadInputError extends SyncError {
  constructor(failure: SyncFailure) {
    super(failure);
    this.name = 'DropboxBadInputError';
  }
}

interface ResponseErrorShape {
  status: number;
  headers?: { get(name: string): string | null };
  error?: unknown;
}

function responseError(error: unknown): ResponseErrorShape | undefined {
  const e = error as Partial<ResponseErrorShape> | null;
  return e && typeof e === 'object' && typeof e.status === 'number' ? (e as ResponseErrorShape) : undefined;
}

function errorTag(body: unknown): string {
  const inner = (body as { error?: { '.tag'?: unknown } } | null)?.error;
  return typeof inner?.['.tag'] === 'string' ? inner['.tag'] : '';
}

/**
 * Retry-After in ms: the header, else the JSON body's retry_after, else 5 s (as the Python SDK);
 * at most MAX_SERVER_WAIT_MS.
 */
export function retryAfterMs(error: ResponseErrorShape): number {
  const header = retryAfterHeaderMs(error);
  if (header !== undefined) return header;
  const body = (error.error as { error?: { retry_after?: unknown } } | null)?.error?.retry_after;
  return typeof body === 'number' && body >= 0 ? Math.min(body * 1000, MAX_SERVER_WAIT_MS) : 5_000;
}

/** The Retry-After header (integer seconds) in ms, at most MAX_SERVER_WAIT_MS, when the answer has one. */
function retryAfterHeaderMs(error: ResponseErrorShape): number | undefined {
  const raw = error.headers?.get('retry-after');
  if (raw === null || raw === undefined || raw.trim() === '') return undefined;
  const seconds = Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, MAX_SERVER_WAIT_MS) : undefined;
}

/**
 * A 5xx or 408: retried with the exponential backoff, or after the server's Retry-After when it
 * sends one (Dropbox may, on 503) and it is longer; that wait also becomes the least the actor's
 * backoff waits if the call gives up.
 */
function unavailable(response: ResponseErrorShape, message: string, attempt: number, baseDelayMs: number, random: () => number) {
  const waitMs = backoff(attempt, baseDelayMs, random);
  const asked = retryAfterHeaderMs(response);
  if (asked === undefined) return { kind: 'dropbox_unavailable' as const, message, waitMs, retry: true };
  return { kind: 'dropbox_unavailable' as const, message: `${message}, retry after ${asked} ms`, waitMs: Math.max(waitMs, asked), retryAfterMs: asked, retry: true };
}

/**
 * Calls Dropbox through the SDK with the policy the SDK lacks: 429 waits at least Retry-After,
 * 5xx/408/timeouts/network errors retry with exponential backoff and jitter (at least a 5xx's
 * Retry-After when it sends one), a 401
 * expired_access_token refreshes once, 409 becomes a typed DropboxEndpointError for the caller,
 * and anything else becomes a SyncError that the actor turns into a persisted backoff.
 */
export async function callDropbox<T>(label: string, call: (client: Dropbox) => Promise<T>, options: CallOptions): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 4;
  const baseDelayMs = options.baseDelayMs ?? 250;
  const random = options.random ?? Math.random;
  let refreshed = false;
  for (let attempt = 1; ; attempt++) {
    if (options.signal.aborted) throw new AbortedError();
    let failure: { kind: FailureKind; message: string; waitMs: number; retryAfterMs?: number; retry: boolean };
    const started = performance.now();
    try {
      const result = await call(await options.session.client(options.signal));
      options.onCall?.({ route: label, durationMs: performance.now() - started, status: 200 });
      return result;
    } catch (error) {
      if (options.signal.aborted) throw new AbortedError();
      const response = responseError(error);
      const timedOut = (error as { name?: string } | null)?.name === 'TimeoutError';
      options.onCall?.({ route: label, durationMs: performance.now() - started, status: response?.status ?? (timedOut ? 'timeout' : 'network') });
      if (response?.status === 409) throw new DropboxEndpointError(errorTag(response.error), summary(response.error), response.error);
      // Before the 401 branch: RFC 6749 §5.2 lets /oauth2/token answer invalid_client with a 401,
      // which is the app's key or secret, not this account's token (a re-link would not help).
      if ((response?.status === 400 || response?.status === 401) && isAppRejected(response.error)) throw fail(options, 'app_credentials', appRejectedMessage(label));
      if (response?.status === 401) {
        if (errorTag(response.error) !== 'expired_access_token' || !options.session.canRefresh || refreshed) {
          throw fail(options, 'auth', `${label}: Dropbox refused the token (${errorTag(response.error) || 401}); re-link the account`);
        }
        refreshed = true;
        const refreshError = await options.session.refresh().then(() => undefined, (e: unknown) => e ?? new Error('token refresh failed'));
        if (refreshError === undefined) {
          attempt--;
          continue;
        }
        if (options.signal.aborted) throw new AbortedError();
        // A revoked refresh token needs a re-link; an outage of /oauth2/token is retried like any other.
        failure = refreshFailure(options, label, refreshError, attempt, baseDelayMs, random);
        refreshed = false;
      } else if (response?.status === 400 && isInvalidGrant(response.error)) {
        throw fail(options, 'auth', `${label}: the refresh token was revoked; re-link the account`);
      } else if (response?.status === 429) {
        const wait = retryAfterMs(response);
        failure = { kind: 'rate_limited', message: `${label}: rate limited, retry after ${wait} ms`, waitMs: wait, retryAfterMs: wait, retry: true };
      } else if (response && (response.status >= 500 || response.status === 408)) {
        failure = unavailable(response, `${label}: Dropbox answered ${response.status}`, attempt, baseDelayMs, random);
      } else if (response?.status === 400) {
        throw new DropboxBadInputError(fail(options, 'internal', `${label}: Dropbox refused the request as bad input (400): ${summary(response.error)}`).failure);
      } else if (response) {
        throw fail(options, 'internal', `${label}: Dropbox answered ${response.status}: ${summary(response.error)}`);
      } else if (isTransient(error)) {
        failure = { kind: 'dropbox_unavailable', message: `${label}: ${describe(error)}`, waitMs: backoff(attempt, baseDelayMs, random), retry: true };
      } else {
        throw error;
      }
    }
    if (attempt >= maxAttempts || failure.waitMs > MAX_IN_CALL_WAIT_MS) throw fail(options, failure.kind, failure.message, failure.retryAfterMs);
    options.onRetry?.({ attempt, waitMs: failure.waitMs, reason: failure.message });
    await sleep(options.clock, failure.waitMs, options.signal);
  }
}

/** The retryable failure of a refresh after a 401 expired_access_token; throws for the permanent ones. */
function refreshFailure(options: CallOptions, label: string, error: unknown, attempt: number, baseDelayMs: number, random: () => number) {
  const response = responseError(error);
  if (response?.status === 400 && isInvalidGrant(response.error)) throw fail(options, 'auth', `${label}: the refresh token was revoked; re-link the account`);
  const message = `${label}: token refresh failed: ${describe(error)}`;
  if (response?.status === 429) {
    const wait = retryAfterMs(response);
    return { kind: 'rate_limited' as const, message, waitMs: wait, retryAfterMs: wait, retry: true };
  }
  if (response && (response.status >= 500 || response.status === 408)) return unavailable(response, message, attempt, baseDelayMs, random);
  if (!response && isTransient(error)) return { kind: 'dropbox_unavailable' as const, message, waitMs: backoff(attempt, baseDelayMs, random), retry: true };
  // The app's own key or secret, not the account's token: re-linking would not help, fixing the
  // engine's settings does, and every account retries on its own backoff meanwhile.
  if (response && isAppRejected(response.error)) throw fail(options, 'app_credentials', appRejectedMessage(label));
  throw fail(options, 'auth', `${message}; re-link the account`);
}

function backoff(attempt: number, baseMs: number, random: () => number): number {
  const exponential = baseMs * 2 ** (attempt - 1);
  return Math.round(exponential / 2 + (exponential / 2) * random());
}

function fail(options: CallOptions, kind: FailureKind, message: string, retryAfterMs?: number): SyncError {
  const refused = kind === 'auth' ? options.session.credentialsDigest : undefined;
  return new SyncError({
    kind,
    message,
    at: options.clock.now(),
    jitter: (options.random ?? Math.random)(),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    ...(refused !== undefined ? { credentials: refused } : {}),
  });
}

/** What a failed answer said, short, with anything that could be a credential taken out (it reaches `lastError` and the logs). */
function summary(body: unknown): string {
  if (typeof body === 'string') return redactSecrets(body.slice(0, 200));
  const s = (body as { error_summary?: unknown } | null)?.error_summary;
  return redactSecrets(typeof s === 'string' ? s : JSON.stringify(body)?.slice(0, 200) ?? '');
}

function isInvalidGrant(body: unknown): boolean {
  return (body as { error?: unknown } | null)?.error === 'invalid_grant';
}

function appRejectedMessage(label: string): string {
  return `${label}: Dropbox refused the app's key or secret at /oauth2/token (invalid_client): check DROPBOX_APP_KEY and DROPBOX_APP_SECRET`;
}

/**
 * /oauth2/token refusing the app itself (invalid_client, unauthorized_client). The API's own errors
 * carry `error` as an object (`{ '.tag': 'invalid_access_token' }`), never these strings.
 */
export function isAppRejected(body: unknown): boolean {
  const error = (body as { error?: unknown } | null)?.error;
  return error === 'invalid_client' || error === 'unauthorized_client';
}

/** Timeouts (our AbortSignal.timeout), dropped connections and refused connections are worth retrying. */
function isTransient(error: unknown): boolean {
  const e = error as { name?: string; message?: string; cause?: { code?: string } } | null;
  if (!e) return false;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
  if (e.name === 'TypeError' && /fetch failed|terminated|network/i.test(e.message ?? '')) return true;
  if (typeof e.cause?.code === 'string') return true;
  return /ECONNRESET|ECONNREFUSED|socket hang up|terminated|premature close/i.test(e.message ?? '');
}

function describe(error: unknown): string {
  const e = error as { message?: string; cause?: { code?: string; message?: string } } | null;
  const cause = e?.cause?.code ?? e?.cause?.message;
  // A fetch that refused its URL quotes it whole: a refresh's carries the token and the app secret.
  return redactSecrets(`${e?.message ?? String(error)}${cause ? ` (${cause})` : ''}`);
}
