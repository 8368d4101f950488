import type { Engine, AccountStatus } from '../engine/engine.js';
import type { EngineEventMap, EngineEvents } from '../engine/engine-events.js';
import { accountView, formatSse, sseComment, type StatusMessage } from './messages.js';
import { ProgressTracker } from './progress-tracker.js';
import { forEachBounded } from '../engine/semaphore.js';

/** Account statuses read at once by a snapshot or a refresh. */
const READ_CONCURRENCY = 32;

/** Accounts a page shows at most, by default (StatusHubOptions.maxAccounts). */
export const DEFAULT_MAX_ACCOUNTS = 500;

/** SSCAN's page size when the hub walks the linked accounts to fill free slots (at most this). */
const WALK_PAGE_SIZE = 500;

/**
 * The states in which an account holds no run: idle, or waiting for a person to re-link it. Its
 * slot on the page may go to a more recently active account; an account in any other state
 * (backoff included: its run resumes at the deadline) keeps its slot.
 */
const AT_REST = new Set(['idle', 'awaitingRelink']);

/** Where the hub reads statuses and hears events: the engine, or a fake in tests. */
export interface StatusSource {
  events: EngineEvents;
  /** How many accounts are linked: a count (SCARD), never a walk, so the page can say "N of M". */
  linkedCount(): Promise<number>;
  /** The linked account ids a page of about `pageSize` at a time, in no order (SSCAN). */
  linkedIdPages(pageSize: number): AsyncIterable<string[]>;
  status(accountId: string): Promise<AccountStatus | null>;
  /**
   * A cheap read that changes whenever the account's status does (a few commands instead of a
   * whole status): the periodic refresh reads the whole status only of accounts whose fingerprint
   * moved. An unlink moves it too (it bumps the fence), which is how a refresh notices one.
   */
  fingerprint(accountId: string): Promise<string>;
  /** The state of the actor if this process runs it right now (fresher than any read of Redis). */
  liveState(accountId: string): string | undefined;
}

export function engineSource(engine: Engine): StatusSource {
  return {
    events: engine.events,
    linkedCount: () => engine.accounts.linkedCount(),
    linkedIdPages: (pageSize) => engine.accounts.linkedIdPages(pageSize),
    status: (accountId) => engine.status(accountId),
    fingerprint: (accountId) => engine.statusFingerprint(accountId),
    liveState: (accountId) => engine.host.liveState(accountId),
  };
}

/** One open stream. `send` throws once the stream is gone; the hub then drops the client. */
export interface StatusClient {
  send(chunk: string): void;
}

export interface StatusHubOptions {
  /**
   * Accounts shown at most, whatever the number linked (default 500): what a page costs (its
   * snapshot, every refresh, the hub's memory) is bounded by this. Which ones: see StatusHub.
   */
  maxAccounts?: number;
  /**
   * The shown accounts' fingerprints (and the count of linked accounts) are re-read this often
   * while a page is open, and the status of those whose fingerprint moved (catches unlinks, dirty
   * marks, runs in other processes); free slots are filled then.
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

/** An account read for a page: its status (null: not linked) and the fingerprint read just before. */
interface AccountRead {
  accountId: string;
  status: AccountStatus | null;
  fingerprint: string;
}

/**
 * Fans the engine's events out to the open status pages: a snapshot when a page connects, then
 * one message per change. Progress comes from the in-memory `ProgressTracker` (always fed, so a
 * page opened mid-run sees that run); state from the live actor; dirty flag, queue, last sync and
 * last error from `engine.status`, re-read when an event names the account (a webhook: the accounts
 * it names), and every `refreshIntervalMs` while at least one page is open for the accounts whose
 * fingerprint moved. No timers run while no page is open.
 *
 * The pages show at most `maxAccounts` accounts, the same ones on every open page, and are told
 * how many are linked. The rule for which ones:
 * - when slots are free (a page connects, a refresh), they go first to the accounts this process
 *   saw an event for (the last `maxAccounts` of them are remembered, page open or not), most
 *   recently active first, then to accounts from a walk of the linked set (SSCAN, a page at a
 *   time, carried on from where the last fill stopped);
 * - an event for an account not shown takes a free slot, or else the slot of the shown account
 *   that was least recently active among those at rest, an idle one before one awaiting a re-link
 *   (one filled from the walk counts as never active); an account whose run is going, or whose
 *   status is not read yet, keeps its slot, so when every shown account is running the newcomer
 *   is not shown;
 * - an unlinked account leaves the page at the next refresh, which fills its slot.
 */
export class StatusHub {
  readonly progress: ProgressTracker;
  private readonly maxAccounts: number;
  private readonly clients = new Set<StatusClient>();
  /** The accounts the pages show, with their last status read (undefined until the first read lands). */
  private readonly shown = new Map<string, AccountStatus | undefined>();
  private readonly toRefresh = new Set<string>();
  private readonly progressDue = new Set<string>();
  private readonly readAt = new Map<string, number>();
  /** The fingerprint read just before each account's last whole status read by a refresh. */
  private readonly fingerprints = new Map<string, string>();
  /**
   * The accounts this process last saw an event for, least recent first (a Map iterates in
   * insertion order; an event moves its account to the end), each with a sequence number that
   * ranks it. At most maxAccounts: more could never be shown at once.
   */
  private readonly activity = new Map<string, number>();
  private activitySeq = 0;
  /** The linked-set walk that fills free slots, where the last fill stopped. */
  private walk: AsyncIterator<string[]> | undefined;
  /** The count of linked accounts the pages were last told. */
  private linked: number | undefined;
  /** Snapshot reads and refreshes, one at a time: each decides from what the one before left. */
  private reads: Promise<void> = Promise.resolve();
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
    this.maxAccounts = Math.max(1, Math.floor(options.maxAccounts ?? DEFAULT_MAX_ACCOUNTS));
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
        this.active(e.accountId);
        this.pushAccount(e.accountId);
      },
      state: (e) => {
        this.progress.state(e);
        this.active(e.accountId);
        // Every transition of every account passes here: build the message only for a shown account.
        if (!this.admit(e.accountId)) return;
        const shown = this.shown.get(e.accountId);
        if (shown) shown.state = e.to;
        this.broadcast({ type: 'transition', at: this.at(), ...e });
        this.pushAccount(e.accountId);
        this.refreshSoon(e.accountId);
      },
      queued: (e) => {
        this.progress.queued(e);
        this.active(e.accountId);
        this.pushAccount(e.accountId);
      },
      fileSynced: (e) => {
        this.progress.fileSynced(e);
        this.active(e.accountId);
        this.pushProgressSoon(e.accountId);
      },
      downloadFailed: (e) => {
        this.progress.downloadFailed(e);
        this.active(e.accountId);
        this.pushProgressSoon(e.accountId);
      },
      stepFailed: (e) => {
        this.active(e.accountId);
        this.refreshSoon(e.accountId);
      },
      // A webhook marks its accounts dirty (and may wake idle ones): re-read those. Re-reading every
      // account on each webhook kept a large install's Redis busy for as long as webhooks came.
      webhook: (e) => {
        for (const accountId of e.accountIds ?? []) {
          this.active(accountId);
          this.refreshSoon(accountId);
        }
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
    this.activity.clear();
  }

  /** Accounts the pages show (held only while a page is open; at most maxAccounts). */
  get knownCount(): number {
    return this.shown.size;
  }

  /**
   * Reads the accounts to show (see the class comment) and the count of linked ones, then (in one
   * synchronous step, so no event falls between) sends the snapshot and adds the client. Returns
   * the disconnect function. Rejects if the linked accounts cannot be counted (an account whose
   * own read fails is left out until the next refresh).
   */
  async connect(client: StatusClient): Promise<() => void> {
    const { linked, reads } = await this.serially(async () => {
      const linked = await this.source.linkedCount();
      // A page already open: its accounts are read again, as a refresh would, and free slots filled.
      const ids = [...this.shown.keys()];
      if (linked > ids.length) ids.push(...(await this.candidates(this.maxAccounts - ids.length)));
      return { linked, reads: await this.readAccounts(ids) };
    });
    // The pages already open get what this read found changed, as a refresh would have told them:
    // stored without that, a change (a run in another process) would never reach them.
    const open = this.clients.size > 0;
    if (open) this.setLinked(linked);
    else this.linked = linked;
    for (const read of reads) this.take(read, open);
    const accounts = [...this.shown.values()]
      .filter((status): status is AccountStatus => status !== undefined)
      .sort((a, b) => a.accountId.localeCompare(b.accountId))
      .map((status) => this.view(status));
    client.send(formatSse({ type: 'snapshot', at: this.at(), linked, accounts }));
    this.clients.add(client);
    this.startTimers();
    let connected = true;
    return () => {
      if (!connected) return;
      connected = false;
      this.drop(client);
    };
  }

  /**
   * What the timer runs every refreshIntervalMs while a page is open: the count of linked accounts,
   * the fingerprints of the shown ones (the status of those whose fingerprint moved, so unlinked
   * ones leave), then free slots filled. Its cost is bounded by maxAccounts, not by the accounts
   * linked. Resolves when done (a refresh already going is joined).
   */
  refresh(): Promise<void> {
    this.refreshing ??= this.serially(async () => {
      if (this.clients.size === 0) return;
      const linked = await this.source.linkedCount();
      this.setLinked(linked);
      const results = await forEachBounded([...this.shown.keys()], READ_CONCURRENCY, (id) => this.refreshIfMoved(id));
      this.report(results);
      const room = this.maxAccounts - this.shown.size;
      if (this.clients.size === 0 || room <= 0 || linked <= this.shown.size) return;
      for (const read of await this.readAccounts(await this.candidates(room))) this.take(read, true);
    }).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private drop(client: StatusClient): void {
    this.clients.delete(client);
    if (this.clients.size === 0) {
      this.stopTimers();
      this.forgetStatuses();
    }
  }

  /**
   * The statuses are there to diff what a page is shown: kept after the last page closed they
   * would be stale by the next one, which reads them again anyway (`connect`). The activity is
   * kept: it chooses what the next page shows.
   */
  private forgetStatuses(): void {
    this.shown.clear();
    this.readAt.clear();
    this.fingerprints.clear();
    this.walk = undefined;
    this.linked = undefined;
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

  private setLinked(linked: number): void {
    if (linked === this.linked) return;
    this.linked = linked;
    this.broadcast({ type: 'linked', at: this.at(), linked });
  }

  /** An event named the account: it becomes the most recently active. */
  private active(accountId: string): void {
    this.activity.delete(accountId);
    this.activity.set(accountId, ++this.activitySeq);
    if (this.activity.size > this.maxAccounts) this.activity.delete(this.activity.keys().next().value!);
  }

  /**
   * Whether the account is shown, giving it a slot if it is not: a free one, or that of the least
   * recently active shown account at rest. False when no page is open or every shown account runs.
   */
  private admit(accountId: string): boolean {
    if (this.clients.size === 0) return false;
    if (this.shown.has(accountId)) return true;
    if (this.shown.size >= this.maxAccounts) {
      const victim = this.leastRecentAtRest();
      if (victim === undefined) return false;
      this.hide(victim);
    }
    this.shown.set(accountId, undefined);
    return true;
  }

  /**
   * The shown account whose slot an event may take: at rest, idle before awaiting a re-link (those
   * are what an operator must act on), the least recently active first. One whose status is not
   * read yet is kept: its state is unknown, and it may be running in another process.
   */
  private leastRecentAtRest(): string | undefined {
    let victim: { accountId: string; parked: boolean; seen: number } | undefined;
    for (const [accountId, status] of this.shown) {
      const state = this.source.liveState(accountId) ?? status?.state;
      if (state === undefined || !AT_REST.has(state)) continue;
      const candidate = { accountId, parked: state === 'awaitingRelink', seen: this.activity.get(accountId) ?? 0 };
      if (!victim || (victim.parked && !candidate.parked) || (victim.parked === candidate.parked && candidate.seen < victim.seen)) victim = candidate;
    }
    return victim?.accountId;
  }

  /** Takes the account off the pages (it may still be linked: a removal tells the page to drop its card). */
  private hide(accountId: string): void {
    this.shown.delete(accountId);
    this.readAt.delete(accountId);
    this.fingerprints.delete(accountId);
    this.toRefresh.delete(accountId);
    this.progressDue.delete(accountId);
    this.broadcast({ type: 'removed', at: this.at(), accountId });
  }

  /** The account's view now, or a read of it first if no page has seen it yet. */
  private pushAccount(accountId: string): void {
    if (!this.admit(accountId)) return;
    this.progressDue.delete(accountId);
    const status = this.shown.get(accountId);
    if (!status) return this.refreshSoon(accountId);
    this.broadcast({ type: 'account', at: this.at(), account: this.view(status) });
  }

  private pushProgressSoon(accountId: string): void {
    if (!this.admit(accountId)) return;
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
    if (!this.admit(accountId)) return;
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
   * The fingerprint is read before the status, so a change between the two reads moves it again
   * for the next refresh; it is kept only once the status read succeeded, so a failed read is
   * tried again.
   */
  private async refreshIfMoved(accountId: string): Promise<void> {
    const fingerprint = await this.source.fingerprint(accountId);
    if (this.shown.get(accountId) !== undefined && this.fingerprints.get(accountId) === fingerprint) return;
    const status = await this.source.status(accountId);
    this.apply(accountId, status);
    if (status && this.shown.has(accountId)) this.fingerprints.set(accountId, fingerprint);
  }

  /** A status read of a shown account lands: the pages get it if it changed, or its removal if unlinked. */
  private apply(accountId: string, status: AccountStatus | null): void {
    // A read that lands after the last page closed, or after the account gave its slot away, must
    // not bring it back.
    if (this.clients.size === 0 || !this.shown.has(accountId)) return;
    const before = this.shown.get(accountId);
    if (!status) {
      this.activity.delete(accountId);
      this.progress.forget(accountId);
      this.hide(accountId);
      return;
    }
    this.readAt.set(accountId, this.now());
    this.shown.set(accountId, status);
    if (!before || JSON.stringify(before) !== JSON.stringify(status)) this.pushAccount(accountId);
  }

  /**
   * A read for a snapshot or a fill lands: a shown account gets it as any read; one not shown takes
   * a free slot (never another account's: only an event does that). With no page open yet
   * (`open` false: the first page's snapshot), the statuses are stored without messages.
   */
  private take({ accountId, status, fingerprint }: AccountRead, open: boolean): void {
    // A fill whose reads landed after the last page closed: nothing to show them to.
    if (open && this.clients.size === 0) return;
    if (!this.shown.has(accountId)) {
      if (!status) {
        this.activity.delete(accountId);
        return;
      }
      if (this.shown.size >= this.maxAccounts) return;
      if (!open) {
        this.shown.set(accountId, status);
        this.fingerprints.set(accountId, fingerprint);
        return;
      }
      this.shown.set(accountId, undefined);
    }
    this.apply(accountId, status);
    // The refreshes that follow then re-read only what moved since this read.
    if (status && this.shown.has(accountId)) this.fingerprints.set(accountId, fingerprint);
  }

  /**
   * Up to `room` accounts not shown, to fill free slots: the recently active first (most recent
   * first), then from the walk of the linked set, carried on from where the last fill stopped and
   * started again once it reached the end. A fill looks at no more than 2 × maxAccounts ids of the
   * walk (the shown ones, at most maxAccounts, may all come first), plus the rest of SSCAN's last
   * page, so that a set whose members are not linked (or not valid ids) costs a page no more than
   * a full one would.
   */
  private async candidates(room: number): Promise<string[]> {
    const picked: string[] = [];
    const taken = new Set(this.shown.keys());
    const take = (accountId: string) => {
      if (picked.length >= room || taken.has(accountId)) return;
      taken.add(accountId);
      picked.push(accountId);
    };
    for (const accountId of [...this.activity.keys()].reverse()) take(accountId);
    let looked = 0;
    while (picked.length < room && looked < 2 * this.maxAccounts) {
      this.walk ??= this.source.linkedIdPages(Math.min(this.maxAccounts, WALK_PAGE_SIZE))[Symbol.asyncIterator]();
      const page = await this.walk.next();
      if (page.done) {
        this.walk = undefined;
        break;
      }
      looked += page.value.length;
      for (const accountId of page.value) take(accountId);
    }
    return picked;
  }

  /**
   * Each account's fingerprint then status (as a refresh reads them, see refreshIfMoved),
   * READ_CONCURRENCY at a time: all at once would put a few Redis commands per account in flight
   * together. An account whose read fails is left out; the next refresh reads it.
   */
  private async readAccounts(ids: readonly string[]): Promise<AccountRead[]> {
    const reads: AccountRead[] = [];
    const results = await forEachBounded(ids, READ_CONCURRENCY, async (accountId) => {
      const fingerprint = await this.source.fingerprint(accountId);
      reads.push({ accountId, status: await this.source.status(accountId), fingerprint });
    });
    this.report(results);
    return reads;
  }

  private report(results: PromiseSettledResult<void>[]): void {
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) this.options.onError?.(failed.reason);
  }

  /** Runs `work` after the snapshot reads and refreshes before it have ended. */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.reads.then(work);
    this.reads = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private guard(work: Promise<unknown>): void {
    work.catch((error: unknown) => this.options.onError?.(error));
  }

  private startTimers(): void {
    this.refreshTimer ??= setInterval(() => this.guard(this.refresh()), this.options.refreshIntervalMs ?? 5_000).unref();
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
