import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Hono } from 'hono';
import { badRequest } from './api-error.js';
import { authenticate } from './auth.js';
import { accountedCall, faultResponse } from './call-guard.js';
import { decodeHeaderText, headerSafeJson } from './header-safe-json.js';
import type { EmulatorContext, EmulatorDeps, EmulatorEnv } from './http-context.js';
import { untagged } from './metadata.js';
import { downloadArg, parseArgument } from './request-validation.js';

const ROUTE = 'files/download';

/** The argument travels in the Dropbox-API-Arg header, or in the `arg` query parameter. */
function readArgument(c: EmulatorContext): { path: string; rev?: string } {
  const header = c.req.header('dropbox-api-arg');
  if (header !== undefined) return parseArgument(ROUTE, 'HTTP header "Dropbox-API-Arg"', decodeHeaderText(header), downloadArg);
  const query = c.req.query('arg');
  if (query !== undefined) return parseArgument(ROUTE, 'URL parameter "arg"', query, downloadArg);
  throw badRequest(ROUTE, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".');
}

/** Flips every bit: same length, so only a content_hash check notices. */
function corrupted(bytes: Uint8Array): Uint8Array {
  return bytes.map((byte) => byte ^ 0xff);
}

/** Promises Content-Length bytes, sends half of them, then kills the connection mid-body. */
function truncatedResponse(c: EmulatorContext, headers: Record<string, string>, bytes: Uint8Array): Response {
  const outgoing = c.env.outgoing;
  outgoing.writeHead(200, { ...headers, 'Content-Length': String(bytes.length) });
  outgoing.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => outgoing.destroy());
  return RESPONSE_ALREADY_SENT;
}

/** Promises Content-Length bytes and sends them `chunkBytes` at a time, one chunk every `intervalMs`. */
function dribbledResponse(c: EmulatorContext, deps: EmulatorDeps, headers: Record<string, string>, bytes: Uint8Array, pace: { chunkBytes: number; intervalMs: number }): Response {
  const outgoing = c.env.outgoing;
  outgoing.writeHead(200, { ...headers, 'Content-Length': String(bytes.length) });
  let sent = 0;
  const next = () => {
    if (outgoing.destroyed || deps.closing.aborted) return;
    const end = Math.min(bytes.length, sent + pace.chunkBytes);
    outgoing.write(bytes.subarray(sent, end));
    sent = end;
    if (sent < bytes.length) setTimeout(next, pace.intervalMs).unref();
    else outgoing.end();
  };
  next();
  return RESPONSE_ALREADY_SENT;
}

export function registerDownloadRoute(app: Hono<EmulatorEnv>, deps: EmulatorDeps): void {
  const handler = async (c: EmulatorContext): Promise<Response> => {
    const accountId = authenticate(c, deps, ROUTE);
    return accountedCall(deps, ROUTE, accountId, async () => {
      const arg = readArgument(c);
      const path = arg.rev !== undefined ? `rev:${arg.rev}` : arg.path;
      const { metadata, content } = deps.model.readFile(accountId, path);
      deps.stats.recordDownload(accountId, metadata.path_lower);
      const action = deps.faults.take(ROUTE, accountId, metadata.path_lower);
      const fault = await faultResponse(c, deps, ROUTE, accountId, action);
      if (fault) return fault;
      const headers = {
        'Content-Type': 'application/octet-stream',
        'Dropbox-API-Result': headerSafeJson(untagged(metadata)),
      };
      if (action && 'truncate' in action) return truncatedResponse(c, headers, content);
      if (action && 'dribble' in action) return dribbledResponse(c, deps, headers, content, action.dribble);
      const body = action && 'corrupt' in action ? corrupted(content) : content;
      return new Response(new Uint8Array(body), { status: 200, headers });
    });
  };
  app.post(`/2/${ROUTE}`, handler);
  app.get(`/2/${ROUTE}`, handler);
}
