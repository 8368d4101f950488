// HTTP load generator for figure 1, run in a worker thread so it has its own event loop
// (plain JavaScript: a worker needs no TypeScript loader this way, under tsx and vitest alike).
// closed: `connections` keep-alive connections each send the next request as soon as the last
//         answer arrives, for `durationMs` -> requests completed per second.
// open:   requests are started on a fixed schedule (`rate` per second) whatever the answers do;
//         latency is measured from the scheduled time, so a stall is not hidden (no coordinated omission).
import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';

const { mode, url, path, requests, connections = 32, durationMs, rate } = workerData;
const target = new URL(url);
const agent = new Agent({ keepAlive: true, maxSockets: connections });
let index = 0;

function send() {
  const item = requests[index++ % requests.length];
  return new Promise((resolve) => {
    const req = request(
      { host: target.hostname, port: target.port, path, method: 'POST', agent, headers: { ...item.headers, 'Content-Length': Buffer.byteLength(item.body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', () => resolve(0));
    req.end(item.body);
  });
}

async function closed() {
  let ok = 0;
  let failed = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const status = await send();
        if (status === 200) ok++;
        else failed++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  return { ok, failed, seconds, perSecond: ok / seconds };
}

async function open() {
  const latencies = [];
  let failed = 0;
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  const start = performance.now();
  const inFlight = [];
  let sent = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + (sent * 1000) / rate <= now) {
        const scheduled = start + (sent * 1000) / rate;
        sent++;
        inFlight.push(
          send().then((status) => {
            if (status === 200) latencies.push(performance.now() - scheduled);
            else failed++;
          }),
        );
      }
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  await Promise.all(inFlight);
  return { latencies, failed, sent };
}

const result = mode === 'closed' ? await closed() : await open();
agent.destroy();
parentPort.postMessage(result);
