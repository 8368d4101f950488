import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Engine } from '../engine/engine.js';

/** Seconds; from a quick step to a long idle spell or a long download run. */
const STATE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Seconds; one HTTP attempt to Dropbox (the call deadline is 30 s by default). */
const DROPBOX_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds; one round trip to Redis. */
const REDIS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

/**
 * The engine's Prometheus metrics, in a registry of their own (not prom-client's global one, so
 * several engines in one process, as in tests, never share or clash).
 *
 * Everything comes from `engine.events` (the engine's one report stream) or is read at scrape time;
 * nothing hooks into the engine itself. No label ever carries an account id or a path: every label
 * has a small fixed set of values (outcomes, reasons, failure kinds, state names, Dropbox routes,
 * HTTP statuses).
 *
 * Read at scrape time:
 * - `mailroom_actors_in_memory`: `engine.host.size`.
 * - `mailroom_queue_depth`: downloads waiting in the Redis queues of the accounts whose actor is in
 *   memory in this process (summed over processes it is the whole backlog: an actor only leaves
 *   memory once idle, i.e. with its queue drained). The accounts are those that reported an event
 *   here, have not gone idle since, and still have an actor; one HLEN each per scrape.
 * - `mailroom_redis_command_duration_seconds{command="ping"}`: the round trip of one PING per
 *   scrape, on the engine's connection. A sample of Redis latency as this process sees it (network,
 *   server load, client queueing), not a timing of every command: wrapping every command would cost
 *   on the hot path and measure the same thing. `mailroom_redis_up` is 0 when that PING failed.
 */
export function createMetrics(engine: Engine): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const events = engine.events;

  // Accounts whose queue the depth gauge reads: those that reported here, dropped when they go idle
  // (an idle account's queue is drained) or, at scrape time, once their actor is gone. Dropped at
  // idle and not only at scrape time, so that a process nobody scrapes does not keep an entry for
  // every account it ever synced (docs/benchmarks.md, figure 7).
  const active = new Set<string>();
  const seen = (accountId: string) => active.add(accountId);
  for (const name of ['syncStarted', 'listed', 'queued', 'stepFailed'] as const) events.on(name, ({ accountId }: { accountId: string }) => seen(accountId));

  const webhooks = new Counter({
    name: 'mailroom_webhooks_total',
    help: 'Webhook deliveries: accepted (signature verified) or refused, by reason (reason="none" when accepted).',
    labelNames: ['outcome', 'reason'] as const,
    registers,
  });
  // Known series at 0 from the start, so rate() and alerts see them before the first event.
  webhooks.inc({ outcome: 'accepted', reason: 'none' }, 0);
  for (const reason of ['signature', 'malformed', 'too_large', 'unavailable', 'aborted']) webhooks.inc({ outcome: 'refused', reason }, 0);
  events.on('webhook', ({ outcome, reason }) => webhooks.inc({ outcome, reason: outcome === 'accepted' ? 'none' : (reason ?? 'unknown') }));

  const syncs = new Counter({ name: 'mailroom_syncs_started_total', help: 'Runs started: an account left idle to list its changes, or listed again at once after a run a webhook arrived during.', registers });
  events.on('syncStarted', () => syncs.inc());

  const listings = new Counter({
    name: 'mailroom_listing_passes_total',
    help: 'Completed listing passes: mode="continue" (from the cursor) or "full" (from scratch).',
    labelNames: ['mode'] as const,
    registers,
  });
  listings.inc({ mode: 'continue' }, 0);
  listings.inc({ mode: 'full' }, 0);
  events.on('listed', ({ mode }) => listings.inc({ mode }));

  const downloads = new Counter({
    name: 'mailroom_downloads_total',
    help: 'Queued files handled: outcome="downloaded", "unchanged" (already on disk with the listed content) or "failed".',
    labelNames: ['outcome'] as const,
    registers,
  });
  for (const outcome of ['downloaded', 'unchanged', 'failed']) downloads.inc({ outcome }, 0);
  const downloadBytes = new Counter({ name: 'mailroom_download_bytes_total', help: 'Bytes of the files downloaded (their listed size).', registers });
  const downloadErrors = new Counter({
    name: 'mailroom_download_errors_total',
    help: 'Failed downloads by failure kind (rate_limited, dropbox_unavailable, auth, redis, content_mismatch, filesystem, post: in the mirror but no entry, ...).',
    labelNames: ['kind'] as const,
    registers,
  });
  events.on('fileSynced', ({ accountId, bytes, downloaded }) => {
    seen(accountId);
    downloads.inc({ outcome: downloaded ? 'downloaded' : 'unchanged' });
    if (downloaded) downloadBytes.inc(bytes);
  });
  events.on('downloadFailed', ({ accountId, kind }) => {
    seen(accountId);
    downloads.inc({ outcome: 'failed' });
    downloadErrors.inc({ kind });
  });
  const setAside = new Counter({
    name: 'mailroom_files_set_aside_total',
    help: 'Files set aside because no retry could write them at their path (a name the disk refuses, a folder in the way), or posts in the mirror that could not become entries (over 4 MiB, Markdown the renderer cannot take): each needs a look, its account status lists it.',
    registers,
  });
  events.on('fileSetAside', ({ accountId }) => {
    seen(accountId);
    setAside.inc();
  });

  const refused = new Counter({
    name: 'mailroom_credentials_refused_total',
    help: 'Times an account was refused its credentials by Dropbox (revoked, expired for good): it waits in awaitingRelink, passivated, until it is linked again. The sweep\'s re-checks of a parked account (1 h, then doubling up to a day) count again when refused.',
    registers,
  });

  const stateDuration = new Histogram({
    name: 'mailroom_state_duration_seconds',
    help: 'Time an account actor spent in a state, observed when it left it.',
    labelNames: ['state'] as const,
    buckets: STATE_BUCKETS,
    registers,
  });
  events.on('state', ({ accountId, from, to, durationMs }) => {
    // A run ends in idle, or in a wait for a re-link: no queue of it moves until then.
    if (to === 'idle' || to === 'awaitingRelink') active.delete(accountId);
    else seen(accountId);
    if (to === 'awaitingRelink') refused.inc();
    stateDuration.observe({ state: from }, durationMs / 1000);
  });

  const dropboxCalls = new Histogram({
    name: 'mailroom_dropbox_call_duration_seconds',
    help: 'One HTTP attempt to Dropbox, by route and status (an HTTP status, "network" or "timeout").',
    labelNames: ['route', 'status'] as const,
    buckets: DROPBOX_BUCKETS,
    registers,
  });
  events.on('dropboxCall', ({ route, status, durationMs }) => dropboxCalls.observe({ route, status: String(status) }, durationMs / 1000));

  new Gauge({
    name: 'mailroom_actors_in_memory',
    help: 'Account actors running in this process (the accounts it owns right now).',
    registers,
    collect() {
      this.set(engine.host.size);
    },
  });

  new Gauge({
    name: 'mailroom_linked_accounts',
    help: 'Accounts linked in the whole deployment (one SCARD per scrape): every process reports the same number, so aggregate with max, not sum.',
    registers,
    async collect() {
      try {
        this.set(await engine.accounts.linkedCount());
      } catch {
        // Redis unreachable: keep the last value; mailroom_redis_up says why it is stale.
      }
    },
  });

  new Gauge({
    name: 'mailroom_queue_depth',
    help: 'Downloads waiting in the queues of the accounts whose actor runs in this process (read from Redis at scrape time).',
    registers,
    async collect() {
      for (const accountId of active) if (!engine.host.actor(accountId)) active.delete(accountId);
      try {
        const counts = await Promise.all([...active].map((accountId) => engine.store.pendingCount(accountId)));
        this.set(counts.reduce((sum, n) => sum + n, 0));
      } catch {
        // Redis unreachable: keep the last value; mailroom_redis_up says why it is stale.
      }
    },
  });

  // One PING per scrape, shared by the two metrics that report it (prom-client collects them in parallel).
  let probe: Promise<number | null> | undefined;
  const pingOnce = (): Promise<number | null> => {
    probe ??= (async () => {
      const started = performance.now();
      try {
        await engine.options.redis.ping();
        return (performance.now() - started) / 1000;
      } catch {
        return null;
      }
    })().finally(() => setImmediate(() => (probe = undefined)));
    return probe;
  };
  new Histogram({
    name: 'mailroom_redis_command_duration_seconds',
    help: 'Redis round trips, measured with one PING per scrape on the engine connection (command="ping").',
    labelNames: ['command'] as const,
    buckets: REDIS_BUCKETS,
    registers,
    async collect() {
      const seconds = await pingOnce();
      if (seconds !== null) this.observe({ command: 'ping' }, seconds);
    },
  });
  new Gauge({
    name: 'mailroom_redis_up',
    help: '1 when the PING of this scrape succeeded, else 0.',
    registers,
    async collect() {
      this.set((await pingOnce()) === null ? 0 : 1);
    },
  });

  return registry;
}
