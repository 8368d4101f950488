import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { DropboxApiError, rateLimited } from './api-error.js';
import type { FaultAction } from './faults.js';
import type { EmulatorContext, EmulatorDeps } from './http-context.js';

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs one authenticated call with its bookkeeping: counted per route, inside the listing in-flight
 * window (latency included, so overlapping listings are visible), delayed by the configured latency.
 */
export async function accountedCall(
  deps: EmulatorDeps,
  route: string,
  accountId: string,
  run: () => Promise<Response>,
): Promise<Response> {
  const end = deps.stats.begin(accountId, route);
  try {
    await sleep(deps.faults.latencyFor(route), deps.closing);
    return await run();
  } finally {
    end();
  }
}

/** Holds the request open until the client gives up or the emulator closes, then drops the socket. */
export function hang(c: EmulatorContext, closing: AbortSignal): Promise<Response> {
  return new Promise((resolve) => {
    const outgoing = c.env.outgoing;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      closing.removeEventListener('abort', finish);
      outgoing.destroy();
      resolve(RESPONSE_ALREADY_SENT);
    };
    if (closing.aborted || outgoing.destroyed || c.env.incoming.destroyed) return finish();
    outgoing.once('close', finish);
    c.req.raw.signal.addEventListener('abort', finish, { once: true });
    closing.addEventListener('abort', finish, { once: true });
  });
}

/**
 * The response a generic fault replaces the answer with, or undefined when the armed fault (if any)
 * only alters a download's body and the caller handles it.
 */
export async function faultResponse(
  c: EmulatorContext,
  deps: EmulatorDeps,
  route: string,
  accountId: string | undefined,
  action: FaultAction | undefined,
): Promise<Response | undefined> {
  if (!action) return undefined;
  if ('hang' in action) return hang(c, deps.closing);
  if ('oauthError' in action) return c.json({ error: action.oauthError, error_description: action.description ?? `${action.oauthError} (injected fault on ${route})` }, action.status);
  if ('status' in action) {
    if (action.status === 429) {
      deps.faults.recordRateLimit(route, accountId, action.retryAfterSeconds);
      return rateLimited(action.retryAfterSeconds, { reason: action.reason, text: action.body }).toResponse();
    }
    const headers: Record<string, string> = action.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(action.retryAfterSeconds) };
    return new DropboxApiError(action.status, action.body ?? `Internal Server Error (injected fault on ${route})`, headers).toResponse();
  }
  return undefined;
}
