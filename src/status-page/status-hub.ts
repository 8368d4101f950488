import type { Engine, AccountStatus } from '../engine/engine.js';
import type { EngineEventMap, EngineEvents } from '../engine/engine-events.js';
import { accountView, formatSse, sseComment, type StatusMessage } from './messages.js';
import { ProgressTracker } from './progress-tracker.js';
import { forEachBounded } from '../engine/semaphore.js';

/** Account statuses read at once by a snapshot or a refresh. */
const READ_CONCURRENCY = 32;

/** Where the hub reads statuses and hears events: the engine, or a fake in tests. */
export interface StatusSource {
  events: EngineEvents;
  linkedIds(): Promise<string[]>;
  status(accountId: string): Promise<AccountStatus | null>;
  /**
   * A cheap read that changes whenever the account's status does (a few commands instead of a
   * whole status): the periodic refresh reads the whole status only of accounts whose fingerprint moved.
   */
  fingerprint(accountId: string): Promise<string>;
  /** The state of the actor if this process runs it right now (fresher than any read of Redis). */
  liveState(accountId: string): string | undefined;
}

export function engineSource(engine: Engine): StatusSource {
  return {
    events: engine.events,
    linkedIds: () => engine.accounts.linkedIds(),
    status: (accountId) => engine.status(accountId),
    fingerprint: (accountId) => engine.statusFingerprint(accountId),
    liveState: (accountId) => {
      const actor = engine.host.actor(accountId);
      return actor ? String(actor.getSnapshot().value) : undefined;
    },
  };
}

/** One open stream. `send` throws once the stream is gone; the hub then drops the client. */
export interface StatusClient {
  send(chunk: string): void;
}

export interface StatusHubOptions {
  /**
   * Every account's fingerprint is re-read this often while a page is open, and the status of those
   * whose fingerprint moved (catches links, unlinks, dirty marks, runs in other processes).
   */
  refreshIntervalMs?: number;
  /** `fileSynced` bursts are coalesced into at most one update per account this often. */
  progressIntervalMs?: number;
  /** While files sync, an account's status (its queue length) is re-read at most this often. */
  statusReadIntervalMs?: number;
  /** A comment on every stream this often, so proxies and idle timeouts keep it open. */
  heartbeatMs?: number;
  /** Finished runs whose progress is kept for the page (the most recent ones). */
  maxFinishedRuns?: number;
  /** An account named by an event is re-read after this delay (several events, one read). */
  settleMs?: number;
  now?: () => number;
  onError?: (error: unknown) => void;
}

/**
 * Fans the engine's events out to the open status pages: a snapshot when a page connects, then
 * one message per change. Progress comes from the in-memory `ProgressTracker` (always fed, so a
 * page opened mid-run sees that run); state from the live actor; dirty flag, queue, last sync and
 * last error from `engine.status`, re-read when an event names the account (a webhook: the accounts
 * it names), and every `refreshIntervalMs` while at least one page is open for the accounts whose
 * fingerprint moved. No timers run while no page is open.
 */
export class StatusHub {
  readonly progress: ProgressTracker;
  private readonly clients = new Set<StatusClient>();
  private readonly known = new Map<string, AccountStatus>();
  private readonly toRefresh = new Set<string>();
  private readonly progressDue = new Set<string>();
  private readonly readAt = new Map<string, number>();
  /** The fingerprint read just before each account's last whole status read by a refresh. */
  private readonly fingerprints = new Map<string, string>();
  private settleTimer: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private detach: (() => void) | undefined;

  constructor(
    private readonly source: StatusSource,
    private readonly options: StatusHubOptions = {},
  ) {
    this.progress = new ProgressTracker(options.now, options.maxFinishedRuns);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Starts listening to the engine (progress is tracked from here on, page open or not). */
  start(): this {
    if (this.detach) return this;
    const events = this.source.events;
    const listeners: { [K in keyof EngineEventMap]?: (...args: EngineEventMap[K]) => void } = {
      syncStarted: (e) => {
        this.progress.syncStarted(e);
        this.pushAccount(e.accountId);
      },
      state: (e) => {
        this.progress.state(e);
        const known = this.known.get(e.accountId);
        if (known) known.state = e.to;
        // Every transition of every account passes here: build the message only for an open page.
        if (this.clients.size > 0) this.broadcast({ type: 'transition', at: this.at(), ...e });
        this.pushAccount(e.accountId);
        this.refreshSoon(e.accountId);
      },
      queued: (e) => {
        this.progress.queued(e);
        this.pushAccount(e.accountId);
      },
      fileSynced: (e) => {
        this.progress.fileSynced(e);
        this.pushProgressSoon(e.accountId);
      },
      downloadFailed: (e) => {
        this.progress.downloadFailed(e);
        this.pushProgressSoon(e.accountId);
      },
      stepFailed: (e) => this.refreshSoon(e.accountId),
      // A webhook marks its accounts dirty (and may wake idle ones): re-read those. Re-reading every
      // account on each webhook kept a large install's Redis busy for as long as webhooks came.
      webhook: (e) => {
        for (const accountId of e.accountIds ?? []) this.refreshSoon(accountId);
      },
    };
    for (const [name, listener] of Object.entries(listeners)) events.on(name as keyof EngineEventMap, listener as never);
    this.detach = () => {
      for (const [name, listener] of Object.entries(listeners)) events.off(name as keyof EngineEventMap, listener as never);
    };
    return this;
  }

  stop(): void {
    this.detach?.();
    this.detach = undefined;
    this.clients.clear();
    this.stopTimers();
    this.forgetStatuses();
  }

  /** Accounts whose status the hub holds (only while a page is open). */
  get knownCount(): number {
    return this.known.size;
  }

  /**
   * Reads every account, then (in one synchronous step, so no event falls between) sends the
   * snapshot and adds the client. Returns the disconnect function. Rejects if the linked accounts
   * cannot be read (an account whose own read fails is left out until the next refresh).
   */
  async connect(client: StatusClient): Promise<() => void> {
    const { statuses, fingerprints } = await this.readAll();
    // The pages already open get what this read found changed, as a refresh would have told them:
    // stored as known without that, a change (a run in another process) would never reach them.
    for (const status of statuses) {
      if (this.clients.size > 0) this.apply(status.accountId, status);
      else this.known.set(status.accountId, status);
    }
    // The refreshes that follow then re-read only what moved since this snapshot.
    for (const [accountId, fingerprint] of fingerprints) this.fingerprints.set(accountId, fingerprint);
    const message: StatusMessage = { type: 'snapshot', at: this.at(), accounts: statuses.map((s) => this.view(s)) };
    client.send(formatSse(message));
    this.clients.add(client);
    this.startTimers();
    let connected = true;
    return () => {
      if (!connected) return;
      connected = false;
      this.drop(client);
    };
  }

  private drop(client: StatusClient): void {
    this.clients.delete(client);
    if (this.clients.size === 0) {
      this.stopTimers();
      this.forgetStatuses();
    }
  }

  /**
   * The statuses are there to diff what a page is shown: one per linked account, so kept after the
   * last page closed they would hold every account in memory for good. The next page reads them all
   * again anyway (`connect`).
   */
  private forgetStatuses(): void {
    this.known.clear();
    this.readAt.clear();
    this.fingerprints.clear();
  }

  private view(status: AccountStatus) {
    return accountView(status, this.progress.get(status.accountId), this.source.liveState(status.accountId));
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private at(): string {
    return new Date(this.now()).toISOString();
  }

  private send(chunk: string): void {
    for (const client of [...this.clients]) {
      try {
        client.send(chunk);
      } catch {
        this.drop(client);
      }
    }
  }

  private broadcast(message: StatusMessage): void {
    if (this.clients.size > 0) this.send(formatSse(message));
  }

  /** The account's view now, or a read of it first if no page has seen it yet. */
  private pushAccount(accountId: string): void {
    if (this.clients.size === 0) return;
    this.progressDue.delete(accountId);
    const status = this.known.get(accountId);
    if (!status) return this.refreshSoon(accountId);
    this.broadcast({ type: 'account', at: this.at(), account: this.view(status) });
  }

  private pushProgressSoon(accountId: string): void {
    if (this.clients.size === 0) return;
    this.progressDue.add(accountId);
    this.progressTimer ??= setTimeout(() => {
      this.progressTimer = undefined;
      const due = [...this.progressDue];
      this.progressDue.clear();
      const now = this.now();
      for (const id of due) {
        this.pushAccount(id);
        // The queue shrinks as files land: re-read it now and then, not on every file.
        if (now - (this.readAt.get(id) ?? 0) >= (this.options.statusReadIntervalMs ?? 1_000)) this.refreshSoon(id);
      }
    }, this.options.progressIntervalMs ?? 100).unref();
  }

  private refreshSoon(accountId: string): void {
    if (this.clients.size === 0) return;
    this.toRefresh.add(accountId);
    this.readAt.set(accountId, this.now());
    this.settleTimer ??= setTimeout(() => {
      this.settleTimer = undefined;
      const ids = [...this.toRefresh];
      this.toRefresh.clear();
      this.guard(Promise.all(ids.map((id) => this.refreshOne(id))).then(() => undefined));
    }, this.options.settleMs ?? 50).unref();
  }

  private async refreshOne(accountId: string): Promise<void> {
    const status = await this.source.status(accountId);
    this.apply(accountId, status);
  }

  /**
   * Re-reads every linked account whose fingerprint moved since the refresh before; sends what
   * changed, and the removals.
   */
  private refreshAll(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const ids = await this.source.linkedIds();
        const results = await forEachBounded(ids, READ_CONCURRENCY, (id) => this.refreshIfMoved(id));
        const failed = results.filter((result) => result.status === 'rejected');
        if (failed.length) this.options.onError?.((failed[0] as PromiseRejectedResult).reason);
        const linked = new Set(ids);
        for (const accountId of [...this.known.keys()]) if (!linked.has(accountId)) this.apply(accountId, null);
        for (const accountId of [...this.fingerprints.keys()]) if (!linked.has(accountId)) this.fingerprints.delete(accountId);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * The fingerprint is read before the status, so a change between the two reads moves it again
   * for the next refresh; it is kept only once the status read succeeded, so a failed read is
   * tried again.
   */
  private async refreshIfMoved(accountId: string): Promise<void> {
    const fingerprint = await this.source.fingerprint(accountId);
    if (this.known.has(accountId) && this.fingerprints.get(accountId) === fingerprint) return;
    const status = await this.source.status(accountId);
    this.apply(accountId, status);
    if (status && this.clients.size > 0) this.fingerprints.set(accountId, fingerprint);
  }

  private apply(accountId: string, status: AccountStatus | null): void {
    // A read that lands after the last page closed must not fill the statuses in again.
    if (this.clients.size === 0) return;
    const before = this.known.get(accountId);
    this.readAt.set(accountId, this.now());
    if (!status) {
      this.readAt.delete(accountId);
      if (!before) return;
      this.known.delete(accountId);
      this.progress.forget(accountId);
      this.broadcast({ type: 'removed', at: this.at(), accountId });
      return;
    }
    this.known.set(accountId, status);
    if (!before || JSON.stringify(before) !== JSON.stringify(status)) this.pushAccount(accountId);
  }

  /**
   * Every linked account's status (a page's snapshot), READ_CONCURRENCY at a time: all at once
   * would put a few Redis commands per account in flight together, tens of thousands with a large
   * install. An account whose read fails is left out; the next refresh reads it.
   */
  private async readAll(): Promise<{ statuses: AccountStatus[]; fingerprints: Map<string, string> }> {
    const linked = await this.source.linkedIds();
    const statuses: AccountStatus[] = [];
    const fingerprints = new Map<string, string>();
    const results = await forEachBounded(linked, READ_CONCURRENCY, async (id) => {
      // Before the status, as a refresh reads them (see refreshIfMoved).
      const fingerprint = await this.source.fingerprint(id);
      const status = await this.source.status(id);
      if (!status) return;
      statuses.push(status);
      fingerprints.set(id, fingerprint);
    });
    const failed = results.filter((result) => result.status === 'rejected');
    if (failed.length) this.options.onError?.((failed[0] as PromiseRejectedResult).reason);
    return { statuses: statuses.sort((a, b) => a.accountId.localeCompare(b.accountId)), fingerprints };
  }

  private guard(work: Promise<unknown>): void {
    work.catch((error: unknown) => this.options.onError?.(error));
  }

  private startTimers(): void {
    this.refreshTimer ??= setInterval(() => this.guard(this.refreshAll()), this.options.refreshIntervalMs ?? 5_000).unref();
    this.heartbeatTimer ??= setInterval(() => this.send(sseComment(`heartbeat ${this.at()}`)), this.options.heartbeatMs ?? 15_000).unref();
  }

  private stopTimers(): void {
    for (const timer of [this.refreshTimer, this.heartbeatTimer]) if (timer) clearInterval(timer);
    for (const timer of [this.settleTimer, this.progressTimer]) if (timer) clearTimeout(timer);
    this.refreshTimer = this.heartbeatTimer = this.settleTimer = this.progressTimer = undefined;
    this.toRefresh.clear();
    this.progressDue.clear();
  }
}
