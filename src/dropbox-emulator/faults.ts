import { lowerPath } from './paths.js';

export type RateLimitReason = 'too_many_requests' | 'too_many_write_operations';

/** What to do instead of (or to) a normal answer. */
export type FaultAction =
  /**
   * Always with a Retry-After header. `body`: a plain-text body instead of the JSON RateLimitError
   * (Dropbox sends either; "a plain text response is equivalent to too_many_requests").
   * `reason`: the JSON body's reason, default too_many_requests.
   */
  | { status: 429; retryAfterSeconds: number; body?: string; reason?: RateLimitReason }
  /** `body`: the plain-text answer (a 400 is bad input, e.g. a malformed header). `retryAfterSeconds`: a Retry-After header (Dropbox may send one with a 503). */
  | { status: 400 | 500 | 503; body?: string; retryAfterSeconds?: number }
  /**
   * oauth2/token only: an OAuth error answer `{ error, error_description }` (RFC 6749 §5.2), e.g.
   * `invalid_client` with a 401, which the RFC allows beside the 400 the emulator answers itself.
   */
  | { status: 400 | 401; oauthError: string; description?: string }
  /** Never answer; the request ends when the client aborts or the emulator closes. */
  | { hang: true }
  /** files/download only: same length, bytes that no longer match content_hash. */
  | { corrupt: true }
  /** files/download only: headers and part of the body, then the socket is destroyed. */
  | { truncate: true }
  /**
   * files/download only: the body in chunks of `chunkBytes`, one every `intervalMs`: a slow link
   * (a large file taking longer than a client's deadline as a whole), or, with an interval longer
   * than that deadline, a transfer that stalls.
   */
  | { dribble: { chunkBytes: number; intervalMs: number } };

export type FaultRule = FaultAction & {
  /** e.g. 'files/list_folder/continue', 'files/download', 'oauth2/token'. */
  route: string;
  accountId?: string;
  /** Matched case-insensitively against the resolved path (downloads). */
  path?: string;
  /** How many matching calls it affects; default 1, `Infinity` for all. */
  times?: number;
};

export type ServedRateLimit = { route: string; accountId: string | undefined; retryAfterSeconds: number; at: number };

type ArmedRule = { rule: FaultRule; remaining: number };

/** Faults tests arm ahead of a call; each matching call consumes one use. */
export class FaultInjector {
  private rules: ArmedRule[] = [];
  private readonly routeLatency = new Map<string, number>();
  private globalLatencyMs: number;
  /** Every 429 served, so a test can check that the retry waited at least Retry-After. */
  readonly rateLimitsServed: ServedRateLimit[] = [];

  constructor(options: { latencyMs?: number } = {}) {
    this.globalLatencyMs = options.latencyMs ?? 0;
  }

  inject(rule: FaultRule): void {
    this.rules.push({ rule, remaining: rule.times ?? 1 });
  }

  /** The first armed rule matching this call, consumed once. */
  take(route: string, accountId: string | undefined, pathLower?: string): FaultAction | undefined {
    const index = this.rules.findIndex(
      ({ rule, remaining }) =>
        remaining > 0 &&
        rule.route === route &&
        (rule.accountId === undefined || rule.accountId === accountId) &&
        (rule.path === undefined || (pathLower !== undefined && lowerPath(rule.path) === pathLower)),
    );
    if (index < 0) return undefined;
    const armed = this.rules[index]!;
    armed.remaining -= 1;
    if (armed.remaining <= 0) this.rules.splice(index, 1);
    const { route: _r, accountId: _a, path: _p, times: _t, ...action } = armed.rule;
    return action as FaultAction;
  }

  recordRateLimit(route: string, accountId: string | undefined, retryAfterSeconds: number): void {
    this.rateLimitsServed.push({ route, accountId, retryAfterSeconds, at: Date.now() });
  }

  /** Latency for one route, or for every route when `route` is omitted. */
  setLatency(ms: number, route?: string): void {
    if (route === undefined) this.globalLatencyMs = ms;
    else this.routeLatency.set(route, ms);
  }

  latencyFor(route: string): number {
    return this.routeLatency.get(route) ?? this.globalLatencyMs;
  }

  pending(): number {
    return this.rules.length;
  }

  clear(): void {
    this.rules = [];
    this.routeLatency.clear();
    this.rateLimitsServed.length = 0;
  }
}
