// HTTP load generator for figure 1, run in a worker thread so it has its own event loop (plain
// JavaScript: a worker needs no TypeScript loader this way, under tsx and vitest alike).
// closed: `connections` keep-alive connections each send the next request as soon as the last
//         answer arrives, for `durationMs` -> requests answered per second.
// open:   requests start on a fixed schedule (`rate` per second) whatever the answers do. Each one's
//         latency is reported twice: from its scheduled time (no coordinated omission, but it also
//         counts this generator's own timer lateness, up to a millisecond or so) and from the tick
//         that dispatched it (the server's part: a request that found every connection busy still
//         counts its wait for one).
//
// Raw sockets, not node:http's client: its cost per request (an agent, a ClientRequest, header
// objects, a parser per answer) made the generator the bottleneck on 2 cores. Measured in the
// fourth session against the same server: the bare route 17-19k requests/s with node:http's client
// and 41-46k/s with this one, so the old closed loop reported the client's limit for the bare route
// (a ratio of 0.64-0.70 where the servers' own rates give 0.42-0.46), and the old open loop's
// queueing showed up as 30-117 ms of "p99" for a route that answers in microseconds. Here a request
// is one pre-built buffer written to an idle socket, and an answer is found by its Content-Length.
import { connect } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';

const { mode, url, path, requests, connections = 32, durationMs, rate } = workerData;
const target = new URL(url);
const wire = requests.map((item) =>
  Buffer.from(
    `POST ${path} HTTP/1.1\r\nHost: ${target.host}\r\n` +
      Object.entries({ ...item.headers, 'Content-Length': Buffer.byteLength(item.body) })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('') +
      `\r\n${item.body}`,
  ),
);

const HEADER_END = Buffer.from('\r\n\r\n');

class Connection {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.scheduled = 0;
    this.dispatched = 0;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
  }

  send(request, scheduled, dispatched) {
    this.scheduled = scheduled;
    this.dispatched = dispatched;
    this.socket.write(request);
  }

  /** Complete answers in the buffer: one per request sent, as nothing is pipelined. */
  onData(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      const end = this.buffer.indexOf(HEADER_END);
      if (end < 0) return;
      const head = this.buffer.toString('latin1', 0, end);
      if (/\r\ntransfer-encoding:/i.test(head)) throw new Error(`load-worker reads answers by Content-Length, got: ${head}`);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      const total = end + 4 + length;
      if (this.buffer.length < total) return;
      const status = Number(head.slice(9, 12));
      this.buffer = this.buffer.subarray(total);
      answered(this, status);
    }
  }
}

const latencies = [];
const fromDispatch = [];
let failed = 0;
let ok = 0;
let sent = 0;
let done = 0;
let total = Infinity; // open loop: how many requests the schedule holds
let stopAt = Infinity; // closed loop: no request is sent after this
const idle = [];
const waiting = []; // open loop: requests that found every connection busy
let finish;

function answered(connection, status) {
  const now = performance.now();
  if (status === 200) {
    ok++;
    if (mode === 'open') {
      latencies.push(now - connection.scheduled);
      fromDispatch.push(now - connection.dispatched);
    }
  } else failed++;
  done++;
  if (mode === 'closed') {
    if (now < stopAt) connection.send(wire[sent++ % wire.length], now, now);
    else if (done === sent) finish();
    return;
  }
  const next = waiting.shift();
  if (next !== undefined) connection.send(wire[next.index % wire.length], next.scheduled, next.dispatched);
  else idle.push(connection);
  if (done === total) finish();
}

const sockets = await Promise.all(
  Array.from({ length: connections }, () => new Promise((resolve, reject) => {
    const socket = connect({ host: target.hostname, port: Number(target.port) }, () => resolve(socket));
    socket.once('error', reject);
  })),
);
const connectionsOpen = sockets.map((socket) => {
  const connection = new Connection(socket);
  socket.on('error', () => undefined);
  socket.on('close', () => {
    // A connection closed under a request loses it: counted as failed, never as a latency.
    if (!idle.includes(connection) && done < Math.min(total, sent)) {
      failed++;
      done++;
      if (done === total || (mode === 'closed' && done === sent && performance.now() >= stopAt)) finish();
    }
  });
  return connection;
});

const start = performance.now();
const finished = new Promise((resolve) => {
  finish = resolve;
});
if (mode === 'closed') {
  stopAt = start + durationMs;
  for (const connection of connectionsOpen) connection.send(wire[sent++ % wire.length], start, start);
} else {
  total = Math.max(1, Math.round((rate * durationMs) / 1000));
  idle.push(...connectionsOpen);
  const tick = () => {
    const now = performance.now();
    while (sent < total && start + (sent * 1000) / rate <= now) {
      const scheduled = start + (sent * 1000) / rate;
      const connection = idle.pop();
      if (connection) connection.send(wire[sent % wire.length], scheduled, now);
      else waiting.push({ index: sent, scheduled, dispatched: now });
      sent++;
    }
    if (sent < total) setTimeout(tick, 1);
  };
  tick();
}
await finished;
const seconds = (performance.now() - start) / 1000;
for (const socket of sockets) socket.destroy();
parentPort.postMessage({ ok, failed, sent, seconds, perSecond: ok / seconds, latencies, fromDispatch });
