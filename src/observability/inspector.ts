import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWebSocketInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import { WebSocket, WebSocketServer } from 'ws';
import type { AnyEventObject, InspectionEvent, MachineContext, Observer } from 'xstate';
import type { Logger } from '../logger.js';
import { redactSecrets } from './redact.js';

/**
 * The Stately inspector (INSPECT=1, off by default): every account actor reports its actor
 * creation, the events it receives and its snapshots through `@statelyai/inspect`'s WebSocket
 * inspector to a relay on loopback, whose page (http://127.0.0.1:INSPECT_PORT) embeds the Stately
 * UI (https://stately.ai/inspect: the browser needs the internet, the engine does not).
 *
 * Why our own relay and not `@statelyai/inspect/server`'s `createInspectorServer`: that one listens
 * on every interface (it takes a port, no host) and accepts WebSocket clients from any web page.
 * This relay does the same job (buffer of the last 200 messages for late viewers, every message
 * forwarded to the other clients) bound to 127.0.0.1 and refusing browser connections from any
 * origin but its own page.
 *
 * What leaves the process is sanitized (see `sanitizeInspectionEvent`): state values, event types,
 * the small account context (account id, attempt, retry deadline, last error's kind and message),
 * never tokens, file contents, step outputs or whole error objects.
 */
export interface Inspection {
  /** Pass to `createActor(machine, { inspect })` (the engine's `inspect` option). */
  inspect: Observer<InspectionEvent>;
  /** The relay's page, for a browser. */
  url: string;
  /** The relay's WebSocket endpoint (the engine is one client, viewers are others). */
  wsUrl: string;
  port: number;
  close(): Promise<void>;
}

export interface InspectionOptions {
  /** 0 picks a free port. */
  port: number;
  /** Loopback unless you have a reason (default 127.0.0.1). */
  host?: string;
  log?: Logger;
}

/** Starts the relay, then connects the WebSocket inspector to it (resolves once connected). */
export async function startInspection(options: InspectionOptions): Promise<Inspection> {
  const relay = await startInspectorRelay({ port: options.port, host: options.host ?? '127.0.0.1' });
  const connected = relay.nextConnection();
  const inspector = createWebSocketInspector({
    url: relay.wsUrl,
    sanitizeContext,
    sanitizeEvent,
    serialize: sanitizeInspectionEvent,
  });
  // In-process and on loopback: a missing connection is a bug, but never one worth failing a start for.
  await Promise.race([connected, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
  options.log?.info({ url: relay.url }, 'Stately inspector: open this page in a browser to watch the account actors');
  return {
    inspect: inspector.inspect,
    url: relay.url,
    wsUrl: relay.wsUrl,
    port: relay.port,
    async close() {
      // Close our client first (an open socket closes cleanly; the adapter only reconnects after an error).
      inspector.stop();
      await relay.close();
    },
  };
}

export interface InspectorRelay {
  port: number;
  url: string;
  wsUrl: string;
  /** Resolves when the next WebSocket client connects. */
  nextConnection(): Promise<void>;
  close(): Promise<void>;
}

const BUFFERED_MESSAGES = 200;

export async function startInspectorRelay(options: { port: number; host: string; inspectorUrl?: string }): Promise<InspectorRelay> {
  const inspectorUrl = options.inspectorUrl ?? 'https://stately.ai/inspect';
  let port = options.port;
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(bridgePage(inspectorUrl));
  });
  const wss = new WebSocketServer({
    server,
    maxPayload: 4 * 1024 * 1024,
    // Any web page can open a WebSocket to loopback: only our own page (and non-browser clients,
    // which send no Origin) may read the stream.
    verifyClient: ({ origin }: { origin?: string }) =>
      !origin || [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`].includes(origin),
  });
  const buffer: string[] = [];
  const waiting: (() => void)[] = [];
  wss.on('connection', (socket) => {
    socket.on('error', () => {});
    for (const message of buffer) socket.send(message);
    socket.on('message', (data) => {
      const message = String(data);
      buffer.push(message);
      if (buffer.length > BUFFERED_MESSAGES) buffer.shift();
      for (const client of wss.clients) if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message);
    });
    for (const resolve of waiting.splice(0)) resolve();
  });
  wss.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const hostInUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    port,
    url: `http://${hostInUrl}:${port}`,
    wsUrl: `ws://${hostInUrl}:${port}`,
    nextConnection: () => new Promise<void>((resolve) => waiting.push(resolve)),
    async close() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** The page a browser opens: the Stately UI in an iframe, fed from this relay (as in @statelyai/inspect/server). */
function bridgePage(inspectorUrl: string): string {
  return `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Mailroom: Stately inspector</title>
  <style>* { margin: 0; padding: 0; } html, body { height: 100%; } iframe { width: 100%; height: 100%; border: none; }</style>
</head>
<body>
  <iframe id="inspector" src="${inspectorUrl}"></iframe>
  <script>
    const iframe = document.getElementById('inspector');
    const buffer = [];
    let connected = false;
    window.addEventListener('message', (e) => {
      if (e.data && e.data.type === '@statelyai.connected') {
        connected = true;
        buffer.forEach((event) => iframe.contentWindow.postMessage(event, '*'));
        buffer.length = 0;
      }
    });
    const ws = new WebSocket('ws://' + location.host);
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (connected) iframe.contentWindow.postMessage(data, '*');
      else buffer.push(data);
    };
  </script>
</body>
</html>`;
}

// ---------------------------------------------------------------------------------------------
// Sanitizers. Allow-lists where the shape is known (inspection events, snapshots, events), and a
// generic pass over the rest that drops secret-looking keys, scrubs bearer tokens from strings,
// and bounds sizes. All of them are idempotent: the WebSocket adapter re-serializes events it had
// to hold while disconnected.
// ---------------------------------------------------------------------------------------------

/** Keys never sent, at any depth. */
const SECRET_KEY = /token|secret|password|credential|authori[sz]ation|cookie|api.?key|content|bytes|body|data/i;
const MAX_STRING = 300;
const MAX_ITEMS = 20;
const MAX_DEPTH = 3;

function scrub(text: string): string {
  const cleaned = redactSecrets(text);
  return cleaned.length > MAX_STRING ? `${cleaned.slice(0, MAX_STRING)}…` : cleaned;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** An error as `{ kind?, message? }`: never its stack, cause, response or any other payload. */
export function summarizeError(error: unknown): { kind?: string; message?: string } {
  if (typeof error === 'string') return { message: scrub(error) };
  if (!isRecord(error)) return {};
  const failure = isRecord(error.failure) ? error.failure : undefined;
  const kind = typeof error.kind === 'string' ? error.kind : typeof failure?.kind === 'string' ? failure.kind : typeof error.name === 'string' ? error.name : undefined;
  const message = typeof error.message === 'string' ? error.message : undefined;
  return { ...(kind !== undefined ? { kind: scrub(kind) } : {}), ...(message !== undefined ? { message: scrub(message) } : {}) };
}

function sanitizeValue(value: unknown, depth: number): unknown {
  if (value === null || value === undefined || typeof value === 'boolean' || typeof value === 'number') return value;
  if (typeof value === 'string') return scrub(value);
  if (typeof value === 'bigint') return String(value);
  if (typeof value !== 'object') return undefined; // functions, symbols
  if (value instanceof Error) return summarizeError(value);
  if (depth >= MAX_DEPTH) return '[…]';
  if (Array.isArray(value)) return value.slice(0, MAX_ITEMS).map((item) => sanitizeValue(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>).slice(0, MAX_ITEMS * 2)) {
    if (SECRET_KEY.test(key)) continue;
    if (key === 'error' || key === 'lastError') out[key] = item === null || item === undefined ? item : { ...summarizeError(item), ...(isRecord(item) && typeof item.at === 'number' ? { at: item.at } : {}) };
    else if (key === 'output') continue;
    else out[key] = sanitizeValue(item, depth + 1);
  }
  return out;
}

/** The actor's context: small fields only (the account context holds no tokens; this keeps it so). */
export function sanitizeContext(context: MachineContext): MachineContext {
  if (!isRecord(context)) return context;
  return sanitizeValue(context, 0) as MachineContext;
}

/** An event: its type and small fields; `output` dropped, `error` reduced to kind and message. */
export function sanitizeEvent(event: AnyEventObject): AnyEventObject {
  if (!isRecord(event)) return { type: String(event) };
  const out: AnyEventObject = { type: typeof event.type === 'string' ? event.type : '' };
  for (const [key, value] of Object.entries(event)) {
    if (key === 'type' || key === 'output' || SECRET_KEY.test(key)) continue;
    out[key] = key === 'error' ? summarizeError(value) : sanitizeValue(value, 1);
  }
  return out;
}

/** A snapshot: status, state value, sanitized context and input, child ids; no output, error summarized. */
export function sanitizeSnapshot(snapshot: unknown): Record<string, unknown> {
  if (!isRecord(snapshot)) return { status: 'active' };
  const out: Record<string, unknown> = { status: typeof snapshot.status === 'string' ? snapshot.status : 'active' };
  if ('value' in snapshot) out.value = sanitizeValue(snapshot.value, 0);
  if (isRecord(snapshot.context)) out.context = sanitizeContext(snapshot.context as MachineContext);
  if ('input' in snapshot && snapshot.input !== undefined) out.input = sanitizeValue(snapshot.input, 1);
  if (snapshot.error !== undefined && snapshot.error !== null) out.error = summarizeError(snapshot.error);
  if (isRecord(snapshot.children)) out.children = Object.fromEntries(Object.keys(snapshot.children).slice(0, MAX_ITEMS).map((id) => [id, { id }]));
  return out;
}

const PASSED_THROUGH = ['type', 'name', 'sessionId', 'rootId', 'parentId', 'sourceId', 'id', 'createdAt', '_version', 'definition'] as const;

/** The whole inspection event, rebuilt from allowed fields only (the inspector's `serialize`). */
export function sanitizeInspectionEvent(event: StatelyInspectionEvent): StatelyInspectionEvent {
  const source = event as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of PASSED_THROUGH) if (source[key] !== undefined) out[key] = source[key];
  if ('snapshot' in source) out.snapshot = sanitizeSnapshot(source.snapshot);
  if ('event' in source) out.event = sanitizeEvent(source.event as AnyEventObject);
  return out as unknown as StatelyInspectionEvent;
}
