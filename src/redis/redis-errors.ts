const UNAVAILABLE = /Connection is closed|Command timed out|Stream isn't writeable|ECONNREFUSED|ECONNRESET|MaxRetriesPerRequest|READONLY|LOADING|CLUSTERDOWN|TRYAGAIN|ETIMEDOUT|EPIPE/;

/** True when an error means "Redis cannot be reached right now" (retry later), not a bug. */
export function isRedisUnavailable(error: unknown): boolean {
  const e = error as { message?: string; name?: string } | null;
  return !!e && (e.name === 'MaxRetriesPerRequestError' || UNAVAILABLE.test(e.message ?? ''));
}
