/**
 * What went wrong in a sync step, as plain JSON: it is stored in the actor's context (and so in
 * the persisted snapshot) and shown by `GET /accounts/:id` as `lastError`.
 */
export type FailureKind =
  | 'rate_limited' // Dropbox 429: wait at least Retry-After
  | 'dropbox_unavailable' // 5xx, timeouts, network errors after the in-call retries
  | 'auth' // token invalid or revoked: the account awaits a re-link (no retry until then)
  | 'app_credentials' // Dropbox refused the app's own key or secret: fix the engine's settings
  | 'redis' // Redis unreachable or a command timed out
  | 'content_mismatch' // downloaded bytes did not match content_hash
  | 'filesystem' // the local folder could not be written
  | 'post' // a post that cannot become an entry (EntryBuildError): set aside, never a step's failure
  | 'internal'; // a bug: logged with its stack, retried like the rest

export interface SyncFailure {
  kind: FailureKind;
  message: string;
  /** Epoch ms when the step failed (from the engine's clock, so fake time works). */
  at: number;
  /** Minimum wait asked for by the server (Retry-After), in ms. */
  retryAfterMs?: number;
  /** A number in [0, 1) drawn when the failure happened: the jitter of its backoff. */
  jitter: number;
  /**
   * `auth` only: the digest of the stored credentials Dropbox refused (LinkedAccount's
   * credentialsDigest). The account is parked only if they are still the stored ones.
   */
  credentials?: string;
}

/** An error that carries its SyncFailure; every engine step throws these. */
export class SyncError extends Error {
  constructor(readonly failure: SyncFailure, options?: { cause?: unknown }) {
    super(failure.message, options);
    this.name = 'SyncError';
  }
}

export const BASE_RETRY_DELAY_MS = 1_000;
export const MAX_RETRY_DELAY_MS = 5 * 60_000;

/**
 * Exponential backoff with jitter ("equal jitter": half fixed, half random), never shorter than
 * what the server asked for, never longer than MAX_RETRY_DELAY_MS (a server's ask is capped there
 * as it is read, call-dropbox.ts; capped here too for a failure persisted before that).
 */
export function retryDelayMs(attempt: number, failure: Pick<SyncFailure, 'retryAfterMs' | 'jitter'>): number {
  const exponential = Math.min(MAX_RETRY_DELAY_MS, BASE_RETRY_DELAY_MS * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.round(exponential / 2 + (exponential / 2) * failure.jitter);
  return Math.min(MAX_RETRY_DELAY_MS, Math.max(jittered, failure.retryAfterMs ?? 0));
}

function isSyncFailure(value: unknown): value is SyncFailure {
  const v = value as Partial<SyncFailure> | null;
  return !!v && typeof v === 'object' && typeof v.kind === 'string' && typeof v.at === 'number' && typeof v.message === 'string';
}

/**
 * Normalises anything an actor rejected with. Engine steps always throw SyncError stamped with
 * their clock; the fallback (Date.now) only covers an error from outside them.
 */
export function toSyncFailure(error: unknown): SyncFailure {
  if (error instanceof SyncError) return error.failure;
  if (isSyncFailure(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return { kind: 'internal', message, at: Date.now(), jitter: Math.random() };
}
