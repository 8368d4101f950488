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

/**
 * The part a `Range` header asks for: one `bytes=a-b`, `bytes=a-` or `bytes=-n` range, which Dropbox's
 * content endpoints serve as 206 with `Content-Range: bytes a-b/total` (the SDK's downloadFile relies
 * on it to resume a .part file and to download in parallel). `undefined`: no usable range, the whole
 * file (a server may ignore a Range it does not understand, RFC 9110 14.2). `'unsatisfiable'`: no byte
 * of the file is in the range (416).
 */
export function requestedRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? '');
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  if (match[2] !== '' && Number(match[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  const end = match[2] === '' ? size - 1 : Number(match[2]);
  return { start, end: Math.min(end, size - 1) };
}

/** Flips every bit: same length, so only a content_hash check notices. */
function corrupted(bytes: Uint8Array): Uint8Array {
  return bytes.map((byte) => byte ^ 0xff);
}

/** Promises Content-Length bytes, sends half of them, then kills the connection mid-body. */
function truncatedResponse(c: EmulatorContext, status: number, headers: Record<string, string>, bytes: Uint8Array): Response {
  const outgoing = c.env.outgoing;
  outgoing.writeHead(status, { ...headers, 'Content-Length': String(bytes.length) });
  outgoing.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => outgoing.destroy());
  return RESPONSE_ALREADY_SENT;
}

/** Promises Content-Length bytes and sends them `chunkBytes` at a time, one chunk every `intervalMs`. */
function dribbledResponse(c: EmulatorContext, deps: EmulatorDeps, status: number, headers: Record<string, string>, bytes: Uint8Array, pace: { chunkBytes: number; intervalMs: number }): Response {
  const outgoing = c.env.outgoing;
  outgoing.writeHead(status, { ...headers, 'Content-Length': String(bytes.length) });
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
      const headers: Record<string, string> = {
        'Content-Type': 'application/octet-stream',
        'Dropbox-API-Result': headerSafeJson(untagged(metadata)),
      };
      const range = requestedRange(c.req.header('range'), content.length);
      if (range === 'unsatisfiable') {
        return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${content.length}` } });
      }
      let status = 200;
      let part = content;
      if (range) {
        status = 206;
        part = content.subarray(range.start, range.end + 1);
        headers['Content-Range'] = `bytes ${range.start}-${range.end}/${content.length}`;
      }
      if (action && 'truncate' in action) return truncatedResponse(c, status, headers, part);
      if (action && 'dribble' in action) return dribbledResponse(c, deps, status, headers, part, action.dribble);
      const body = action && 'corrupt' in action ? corrupted(part) : part;
      return new Response(new Uint8Array(body), { status, headers });
    });
  };
  app.post(`/2/${ROUTE}`, handler);
  app.get(`/2/${ROUTE}`, handler);
}
