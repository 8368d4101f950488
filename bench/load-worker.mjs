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
// is one pre-built buffer written to an idle socket (raw-http.mjs).
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { postRequest, RawConnection } from './raw-http.mjs';

const { mode, url, path, requests, connections = 32, durationMs, rate } = workerData;
const wire = requests.map((item) => postRequest(url, path, item.headers, item.body));

/** A connection and what its request in flight was scheduled and dispatched at. */
class Lane {
  constructor() {
    this.scheduled = 0;
    this.dispatched = 0;
  }

  send(request, scheduled, dispatched) {
    this.scheduled = scheduled;
    this.dispatched = dispatched;
    this.connection.send(request);
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
let ended = false; // the run finished (its connections are then closed on purpose)
let openLanes = connections;

function answered(lane, status) {
  const now = performance.now();
  if (status === 200) {
    ok++;
    if (mode === 'open') {
      latencies.push(now - lane.scheduled);
      fromDispatch.push(now - lane.dispatched);
    }
  } else failed++;
  done++;
  if (mode === 'closed') {
    if (now < stopAt) lane.send(wire[sent++ % wire.length], now, now);
    else if (done === sent) finish();
    return;
  }
  const next = waiting.shift();
  if (next !== undefined) lane.send(wire[next.index % wire.length], next.scheduled, next.dispatched);
  else idle.push(lane);
  if (done === total) finish();
}

const lanes = await Promise.all(
  Array.from({ length: connections }, async () => {
    const lane = new Lane();
    // A connection closed under a request loses it: counted as failed, never as a latency. An idle
    // one (the server closes keep-alive connections idle for 5 s) is no longer handed requests.
    // With every connection gone, what is left can never be answered: counted as failed, the run ends.
    const closed = () => {
      const at = idle.indexOf(lane);
      if (at >= 0) idle.splice(at, 1);
      else if (done < Math.min(total, sent)) {
        failed++;
        done++;
        if (done === total || (mode === 'closed' && done === sent && performance.now() >= stopAt)) finish();
      }
      if (--openLanes === 0 && !ended) {
        failed += (mode === 'open' ? total : sent) - done;
        finish();
      }
    };
    lane.connection = await RawConnection.open(url, (status) => answered(lane, status), closed);
    return lane;
  }),
);

const start = performance.now();
const finished = new Promise((resolve) => {
  finish = resolve;
});
if (mode === 'closed') {
  stopAt = start + durationMs;
  for (const lane of lanes) lane.send(wire[sent++ % wire.length], start, start);
} else {
  total = Math.max(1, Math.round((rate * durationMs) / 1000));
  idle.push(...lanes);
  const tick = () => {
    const now = performance.now();
    while (sent < total && start + (sent * 1000) / rate <= now) {
      const scheduled = start + (sent * 1000) / rate;
      const lane = idle.pop();
      if (lane) lane.send(wire[sent % wire.length], scheduled, now);
      else waiting.push({ index: sent, scheduled, dispatched: now });
      sent++;
    }
    if (sent < total) setTimeout(tick, 1);
  };
  tick();
}
await finished;
ended = true;
const seconds = (performance.now() - start) / 1000;
for (const lane of lanes) lane.connection.close();
parentPort.postMessage({ ok, failed, sent, seconds, perSecond: ok / seconds, latencies, fromDispatch });
