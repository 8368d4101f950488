const UNREACHABLE = /Connection is closed|Command timed out|Stream isn't writeable|ECONNREFUSED|ECONNRESET|MaxRetriesPerRequest|READONLY|LOADING|CLUSTERDOWN|TRYAGAIN|ETIMEDOUT|EPIPE/;

/**
 * Redis answers but refuses writes: out of memory under `noeviction` (OOM), a failing RDB save with
 * `stop-writes-on-bgsave-error` (MISCONF, e.g. a full disk), fewer replicas than
 * `min-replicas-to-write` (NOREPLICAS). Inside a script the error can follow a `-`.
 */
const REFUSING_WRITES = /(?:^|\W)(?:OOM|MISCONF|NOREPLICAS)\b/;

/** True when Redis answers but refuses writes (see REFUSING_WRITES): an operator must act, then retry. */
export function redisRefusesWrites(error: unknown): boolean {
  const e = error as { message?: string } | null;
  return !!e && REFUSING_WRITES.test(e.message ?? '');
}

/** True when an error means "Redis cannot take this right now" (retry later), not a bug. */
export function isRedisUnavailable(error: unknown): boolean {
  const e = error as { message?: string; name?: string } | null;
  return !!e && (e.name === 'MaxRetriesPerRequestError' || UNREACHABLE.test(e.message ?? '') || redisRefusesWrites(error));
}
