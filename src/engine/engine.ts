import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { accountMachine, type AccountContext } from '../../machines/account.machine.js';
import { AccountStore, type StoredLink } from '../accounts/account-store.js';
import type { TokenCipher } from '../accounts/token-cipher.js';
import { DropboxSession, type DropboxAppSettings, type DropboxCredentials } from '../dropbox/dropbox-session.js';
import { EntryStore } from '../entries/entry-store.js';
import type { Logger } from '../logger.js';
import { hasWork, Mailbox, parkedRecheckDue, type WebhookOutcome } from '../mailbox/mailbox.js';
import { Leases } from '../ownership/leases.js';
import { accountKeys, isValidAccountId, SWEEP_TURN_KEY } from '../redis/keys.js';
import { upgradeOldLayout } from '../redis/layout-upgrade.js';
import type { RedisClient } from '../redis/scripts.js';
import { mirrorFolder, type EntryBuilder, type SyncDeps } from '../sync/sync-deps.js';
import { SyncStore } from '../sync/sync-store.js';
import { AccountHost, DEFAULT_STATE_DEADLINES_MS, type AccountHostOptions } from './account-host.js';
import { ActorPersistence } from './actor-persistence.js';
import { type Clock, systemClock } from './clock.js';
import { forEachBounded, Semaphore } from './semaphore.js';
import { EngineEvents } from './engine-events.js';
import { createStepActors, forgetHandovers, newStepHandovers } from './step-actors.js';
import { readStatusRecord } from './status-read.js';
import { TempFilesAhead } from '../sync/write-file.js';

export interface EngineOptions {
  redis: RedisClient;
  dataDir: string;
  dropbox: DropboxAppSettings;
  log: Logger;
  clock?: Clock;
  random?: () => number;
  downloadConcurrency?: number;
  downloadsPerAccount?: number;
  pageLimit?: number;
  maxAttemptsPerCall?: number;
  retryBaseDelayMs?: number;
  /** Lease of an account's actor; renewed every third of it. A dead owner's accounts move after this. */
  leaseTtlMs?: number;
  /** An idle actor leaves memory (and gives its lease back) after this long. */
  idleTimeoutMs?: number;
  /** At most this many accounts sync at once in this process (default 64); the rest wait their turn. */
  maxActiveRuns?: number;
  /** This process's name in leases (default: host-pid-random). */
  ownerId?: string;
  stateDeadlinesMs?: Partial<AccountHostOptions['stateDeadlinesMs']>;
  watchdogIntervalMs?: number;
  /** The lost-webhook safety net: an idle account not listed for this long is listed again (0: never). */
  pollIntervalMs?: number;
  /** At most this many safety-net listings (and re-checks of parked accounts) are started per sweep (rate limit). */
  maxPollsPerSweep?: number;
  /**
   * An account awaiting a re-link whose credentials were last tried this long ago is tried once
   * more (0: never, only a re-link or a resync): a refusal Dropbox did not mean parks no account
   * for good.
   */
  parkedRecheckMs?: number;
  /** Inspects every account actor (see src/observability/inspector.ts). */
  inspect?: AccountHostOptions['inspect'];
  /** Encrypts Dropbox tokens at rest (TOKEN_ENCRYPTION_KEY); without it they are stored as plaintext. */
  tokenCipher?: TokenCipher;
  /** Which files become entries and how (default: Markdown and text posts). */
  entryBuilder?: EntryBuilder;
}

/** Pub/sub channel on which a process asks the owner of an account to deliver an event. */
export const WAKE_CHANNEL = 'mr:wake';

/** Mailboxes the sweep reads at once. */
const SWEEP_BATCH = 500;

/** The re-checks of one wait for a re-link double their interval up to this (or `parkedRecheckMs`, if longer). */
const LONGEST_PARKED_RECHECK_MS = 24 * 60 * 60_000;

/** The set-aside files an account's status lists (all of them are counted). */
export const STATUS_SET_ASIDE_LIMIT = 20;

/** Account statuses `statuses()` reads at once. */
const STATUS_READ_CONCURRENCY = 32;

/** Accounts whose state `inState()` reads at once (one command each). */
const IN_STATE_BATCH = 1_000;

/**
 * Between processes, on WAKE_CHANNEL: deliver WEBHOOK or RESYNC to the account's actor, stop it
 * (UNLINK), or forget the Dropbox session built from its old credentials (RELINKED: a link replaced
 * them, and the owner may be any process).
 */
type WakeMessage = { accountId: string; type: 'WEBHOOK' | 'RESYNC' | 'UNLINK' | 'RELINKED' };

export interface AccountStatus {
  accountId: string;
  state: string;
  dirty: boolean;
  pending: number;
  /**
   * Files that no retry could write at their path (a name the disk refuses, a folder in the
   * file's place), set aside so the rest syncs; each is tried again once a listing names it again
   * (a change to it, a resync). `setAsideFiles` holds the first STATUS_SET_ASIDE_LIMIT by path.
   */
  setAside: number;
  setAsideFiles: { path: string; kind: string; message: string; at: string }[];
  folder: string;
  lastSyncedAt: string | null;
  lastError: { kind: string; message: string; at: string } | null;
}

/**
 * The sync engine without HTTP: accounts, the per-account actors, the mailbox. The HTTP app and
 * `main` wire it to the outside world; tests drive it directly or through the app.
 */
export class Engine {
  readonly accounts: AccountStore;
  readonly mailbox: Mailbox;
  readonly entries: EntryStore;
  readonly store: SyncStore;
  readonly persistence: ActorPersistence;
  readonly host: AccountHost;
  readonly clock: Clock;
  readonly leases: Leases;
  /** Everything the engine reports as it works (metrics, status page, library users). */
  readonly events = new EngineEvents();
  private readonly sessions = new Map<string, DropboxSession>();
  /**
   * The link the lease grant read as an actor started (null: not linked): its first step builds the
   * session from it instead of reading it again. Taken once; dropped with the session.
   */
  private readonly linkAtStart = new Map<string, StoredLink | null>();
  /** What a step read or wrote, for the step that follows (one read less each: see Handover). */
  private readonly handovers = newStepHandovers();
  /** Temp files downloads opened ahead of their bytes (close() removes those still held). */
  private readonly tempFiles = new TempFilesAhead();
  private subscriber: Redis | Cluster | undefined;
  private sweeping: Promise<{ reaped: number; polled: number; rechecked: number }> | undefined;
  /** While a scheduled sweep holds the turn: how long each renewal of it lasts. */
  private sweepTurnMs: number | undefined;
  private upgrading: Promise<number> | undefined;

  readonly options: EngineOptions;

  constructor(options: EngineOptions) {
    // Every path the engine reports (a status's folder) is absolute, whatever the caller passed.
    this.options = { ...options, dataDir: resolve(options.dataDir) };
    const { redis, log } = options;
    this.clock = options.clock ?? systemClock;
    const fenceOf = (accountId: string) => this.host.fenceToken(accountId);
    this.accounts = new AccountStore(redis, { cipher: options.tokenCipher, log });
    this.mailbox = new Mailbox(redis, fenceOf);
    this.entries = new EntryStore(redis, { newId: randomUUID, clock: () => this.clock.now(), fenceOf });
    this.store = new SyncStore(redis, fenceOf);
    this.persistence = new ActorPersistence(redis, fenceOf);
    this.leases = new Leases(redis, options.ownerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`, options.leaseTtlMs ?? 15_000);
    const deps: SyncDeps = {
      store: this.store,
      entries: this.entries,
      accounts: this.accounts,
      mailbox: this.mailbox,
      session: (accountId) => this.session(accountId),
      clock: this.clock,
      log,
      events: this.events,
      dataDir: this.options.dataDir,
      downloadSlots: new Semaphore(options.downloadConcurrency ?? 16),
      writeSlots: new Semaphore(options.downloadConcurrency ?? 16),
      tempFiles: this.tempFiles,
      downloadsPerAccount: options.downloadsPerAccount ?? 4,
      pageLimit: options.pageLimit ?? 2000,
      random: options.random ?? Math.random,
      maxAttemptsPerCall: options.maxAttemptsPerCall ?? 4,
      retryBaseDelayMs: options.retryBaseDelayMs ?? 250,
      entryBuilder: options.entryBuilder,
      lostOwnership: (accountId, reason, token) => this.host.lostOwnership(accountId, reason, token),
      runSlot: (accountId, signal) => this.host.runSlot(accountId, signal),
      requestReconcile: (accountId, reason) => {
        log.warn({ accountId, reason }, 'wrote to the mirror after losing the account: asking its owner for a full reconcile');
        this.resync(accountId).catch((error: unknown) => log.error({ accountId, err: (error as Error).message }, 'could not ask for a reconcile; POST /accounts/:id/resync repairs the mirror'));
      },
      own: (accountId) => {
        const token = this.host.fenceToken(accountId);
        const tokenOf = () => token;
        return {
          token,
          store: new SyncStore(redis, tokenOf),
          entries: new EntryStore(redis, { newId: randomUUID, clock: () => this.clock.now(), fenceOf: tokenOf }),
          mailbox: new Mailbox(redis, tokenOf),
        };
      },
    };
    this.host = new AccountHost({
      machine: accountMachine.provide({ actors: createStepActors(deps, this.handovers) }),
      persistence: this.persistence,
      mailbox: this.mailbox,
      store: this.store,
      accounts: this.accounts,
      leases: this.leases,
      clock: this.clock,
      log,
      events: this.events,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      maxActiveRuns: options.maxActiveRuns ?? 64,
      // A passivated account's session (and the token it holds) is rebuilt from Redis when needed.
      onReleased: (accountId) => {
        this.forgetSession(accountId);
        forgetHandovers(this.handovers, accountId);
      },
      onStarting: (accountId, lease) => this.linkAtStart.set(accountId, lease.link),
      onCredentialsReplaced: (accountId) => this.forgetSession(accountId),
      forward: (accountId, event) => {
        this.publish({ accountId, type: event.type }).catch((error: unknown) => log.warn({ accountId, err: (error as Error).message }, 'could not pass a wake on to the owner; the sweep will find the account'));
      },
      stateDeadlinesMs: { ...DEFAULT_STATE_DEADLINES_MS, ...options.stateDeadlinesMs },
      watchdogIntervalMs: options.watchdogIntervalMs ?? 5_000,
      inspect: options.inspect,
    });
  }

  /**
   * Why these credentials cannot work with this engine's settings, or null when they can: a refresh
   * token alone is useless without the app key to exchange it (the account would sit in backoff
   * with every call refused). Asked before a link, so the caller gets the reason at once.
   */
  credentialsProblem(credentials: DropboxCredentials): string | null {
    if (credentials.accessToken || !credentials.refreshToken || this.options.dropbox.appKey) return null;
    return 'a refreshToken alone needs the Dropbox app key to get access tokens (DROPBOX_APP_KEY, or dropbox.appKey of createEngine; with the app secret unless the token came from a PKCE flow): set it, or link with an accessToken';
  }

  /** Links (or re-links) an account and starts a sync. */
  async link(accountId: string, credentials: DropboxCredentials, ignore: string[] = []): Promise<void> {
    this.forgetSession(accountId);
    const wake = await this.accounts.link(accountId, credentials, ignore, this.clock.now());
    // A re-link cuts a backoff short (a revoked token is the usual reason to re-link).
    // Again now that the new credentials are stored: a step of this process that built a session
    // in between would have cached the old ones.
    this.forgetSession(accountId);
    // Always, before the wake: the owner may be another process, and the wake may not reach it
    // from here (it waits for a run slot here, or goes by the reaper).
    await this.publish({ accountId, type: 'RELINKED' });
    await this.deliver({ accountId, type: wake ? 'WEBHOOK' : 'RESYNC' });
  }

  /** Unlinks: the unlink bumps the fence, so whichever process runs the actor has its writes refused. */
  async unlink(accountId: string): Promise<boolean> {
    this.host.cancelWaiting(accountId);
    await this.host.stop(accountId);
    this.forgetSession(accountId);
    const existed = await this.accounts.unlink(accountId);
    await this.publish({ accountId, type: 'UNLINK' });
    return existed;
  }

  async resync(accountId: string): Promise<boolean> {
    const outcome = await this.mailbox.requestResync(accountId);
    if (outcome === 'unknown') return false;
    await this.deliver({ accountId, type: 'RESYNC' });
    return true;
  }

  /**
   * A verified webhook's accounts: one Redis step each (mark dirty, wake if idle). Resolves when
   * every mark is durable, not when the syncs end; waking happens in the background.
   */
  async notify(accountIds: readonly string[]): Promise<Record<string, WebhookOutcome | 'invalid'>> {
    const outcomes: Record<string, WebhookOutcome | 'invalid'> = Object.create(null) as Record<string, WebhookOutcome | 'invalid'>;
    await Promise.all(
      [...new Set(accountIds)].map(async (accountId) => {
        if (!isValidAccountId(accountId)) {
          outcomes[accountId] = 'invalid';
          return;
        }
        const outcome = await this.mailbox.markDirty(accountId);
        outcomes[accountId] = outcome;
        if (outcome === 'wake') this.wakeInBackground(accountId);
      }),
    );
    return outcomes;
  }

  /**
   * The reaper and the lost-webhook safety net, run every SWEEP_INTERVAL_MS:
   * - an account marked running (or dirty) that no live process owns (its owner died, or a wake was
   *   lost between the webhook's Redis step and an actor start) is taken over here;
   * - Dropbox gives up on a webhook after about ten minutes of failures, so an idle account not
   *   listed for `pollIntervalMs` is marked dirty like a webhook would (a list_folder/continue that
   *   costs one call when nothing changed; never overlapping a run: the mailbox decides), at most
   *   `maxPollsPerSweep` per sweep;
   * - an account awaiting a re-link whose credentials were last tried `parkedRecheckMs` ago (twice
   *   that after one re-check, and so on, up to a day) is woken to try them once more (counted in
   *   `maxPollsPerSweep`).
   */
  sweep(): Promise<{ reaped: number; polled: number; rechecked: number }> {
    // One at a time: a sweep of many accounts can outlast SWEEP_INTERVAL_MS, and overlapping ones
    // each held every linked id and read every mailbox (figure 7 found several at 25,000 accounts).
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /**
   * The sweep as the server schedules it, every `intervalMs`: in one process per interval,
   * whichever takes the turn first (a key set with NX for nine tenths of the interval). Every
   * process sweeping read every mailbox every interval, a cost multiplied by the processes (about
   * 3.4 s of event loop per 10 s each at 100,000 accounts); one is enough, since any process may
   * take over an account whose owner died. A sweeper that dies loses its turn before the next
   * interval, so another process sweeps at most two intervals after its last sweep.
   */
  async scheduledSweep(intervalMs: number): Promise<{ reaped: number; polled: number; rechecked: number } | 'not my turn'> {
    const turnMs = Math.max(1, Math.floor(intervalMs * 0.9));
    const turn = await this.options.redis.set(SWEEP_TURN_KEY, this.leases.ownerId, 'PX', turnMs, 'NX');
    if (turn !== 'OK') return 'not my turn';
    this.sweepTurnMs = turnMs;
    try {
      return await this.sweep();
    } finally {
      this.sweepTurnMs = undefined;
    }
  }

  /** A sweep longer than its turn keeps the turn, page by page: another process's sweep would overlap it. */
  private async keepSweepTurn(): Promise<void> {
    if (this.sweepTurnMs === undefined) return;
    if ((await this.options.redis.get(SWEEP_TURN_KEY)) === this.leases.ownerId) await this.options.redis.pexpire(SWEEP_TURN_KEY, this.sweepTurnMs);
  }

  private async sweepOnce(): Promise<{ reaped: number; polled: number; rechecked: number }> {
    const now = this.clock.now();
    const pollIntervalMs = this.options.pollIntervalMs ?? 0;
    const parkedRecheckMs = this.options.parkedRecheckMs ?? 0;
    const longestRecheckMs = Math.max(parkedRecheckMs, LONGEST_PARKED_RECHECK_MS);
    const maxPolls = this.options.maxPollsPerSweep ?? 100;
    let reaped = 0;
    let polled = 0;
    let rechecked = 0;
    // A page of ids at a time (SSCAN), never the whole set in one command: SMEMBERS of 100,000 ids
    // blocked Redis for about 90 ms on every sweep of every process. (An id SSCAN returns twice is
    // in hand here after its first wake, or marked running after its first poll.)
    for await (const ids of this.accounts.linkedIdPages(SWEEP_BATCH)) {
      await this.keepSweepTurn();
      // Read together (one pipelined write per batch): one after another, a sweep of 100,000
      // accounts took longer than its interval.
      // An account waiting here for a run slot is dirty and unowned, like one whose owner died:
      // during a storm that is most of them, and waking them again would only re-queue them.
      const batch = ids.filter((accountId) => !this.host.handles(accountId));
      const boxes = await Promise.all(batch.map((accountId) => this.mailbox.read(accountId)));
      const unfinished = batch.filter((_, j) => hasWork(boxes[j]!));
      const holders = new Map(await Promise.all(unfinished.map(async (accountId) => [accountId, await this.leases.holder(accountId)] as const)));
      for (const [j, accountId] of batch.entries()) {
        const box = boxes[j]!;
        if (this.host.handles(accountId)) continue;
        if (holders.has(accountId)) {
          if (holders.get(accountId)) continue;
          this.wakeInBackground(accountId);
          reaped++;
        } else if (box.status === 'parked') {
          // Its credentials once more, rarely: a refusal Dropbox did not mean (an incident of its
          // own) would otherwise keep the account waiting for a re-link nobody knows is needed.
          // The script decides (the interval doubles with each re-check, up to a day), stamps the
          // try and marks the account running, so a lost wake is found like any running account's.
          if (parkedRecheckMs > 0 && polled + rechecked < maxPolls && parkedRecheckDue(box, now, parkedRecheckMs, longestRecheckMs)
            && (await this.mailbox.takeParkedRecheck(accountId, now, parkedRecheckMs, longestRecheckMs))) {
            rechecked++;
            this.wakeInBackground(accountId);
          }
        } else if (pollIntervalMs > 0 && polled + rechecked < maxPolls && now - box.listedAt >= pollIntervalMs) {
          polled++;
          if ((await this.mailbox.markDirty(accountId)) === 'wake') this.wakeInBackground(accountId);
        }
      }
    }
    return { reaped, polled, rechecked };
  }

  /**
   * A string that changes whenever `status(accountId)` would, for a page that refreshes often: three
   * small reads, where a status carries the actor's whole snapshot and the set-aside files. The
   * mailbox (state saves bump its actorVersion; dirty, runs, last sync are there), the queue's and
   * the set-aside files' counts. What it misses (a set-aside file replaced by another
   * under the same count) the next change to the account shows.
   */
  async statusFingerprint(accountId: string): Promise<string> {
    const k = accountKeys(accountId);
    const [box, pending, setAside] = await Promise.all([this.options.redis.hgetall(k.mailbox), this.options.redis.hlen(k.queue), this.options.redis.hlen(k.setAside)]);
    return JSON.stringify([box, pending, setAside]);
  }

  /**
   * The statuses of the linked accounts a page at a time (GET /accounts, the library's
   * `accountsPage`): about `page.limit` ids from `page.cursor` (SSCAN's guarantees, see
   * AccountStore.linkedIdPage), sorted by id, and the cursor of the next page; `null`: every
   * account at once. With `state`, only the accounts in it, so a page can be empty with a `next`.
   */
  async statusPage(page: { cursor: string; limit: number } | null, state?: string): Promise<{ accounts: AccountStatus[]; next: string | null }> {
    const { ids, next } = page ? await this.accounts.linkedIdPage(page.cursor, page.limit) : { ids: await this.accounts.linkedIds(), next: null };
    const wanted = state === undefined ? ids : await this.inState(ids, state);
    // Filtered again: a state can move between the two reads.
    const accounts = (await this.statuses(wanted)).filter((status) => state === undefined || status.state === state);
    return { accounts, next };
  }

  /**
   * Those of `ids` whose state is `state` right now, as `status()` would say it (the live actor's,
   * else the stored one's), from one read each: a listing filtered by state (`GET
   * /accounts?state=awaitingRelink`) then reads whole statuses (the actor's snapshot and the
   * set-aside files each) only of the few that match, not of every account. Linked or not is left to `statuses()`.
   */
  async inState(ids: readonly string[], state: string): Promise<string[]> {
    const matching: string[] = [];
    // A page's worth at a time: a whole listing of 100,000 would put every read in flight at once.
    for (let from = 0; from < ids.length; from += IN_STATE_BATCH) {
      const batch = ids.slice(from, from + IN_STATE_BATCH);
      const states = await Promise.all(batch.map(async (accountId) => this.host.liveState(accountId) ?? ((await this.persistence.storedState(accountId)) || 'idle')));
      matching.push(...batch.filter((_, i) => states[i] === state));
    }
    return matching;
  }

  /**
   * The statuses of `ids` (those still linked), in their order, STATUS_READ_CONCURRENCY at a time:
   * all at once put every account's read in flight together, a hundred thousand scripts for a
   * large install (and before a status was one script, a million commands). The first failed read ends it with that error, before the reads not yet sent:
   * going on would send a struggling Redis every other read, a command timeout per batch.
   */
  async statuses(ids: readonly string[]): Promise<AccountStatus[]> {
    const statuses = new Array<AccountStatus | null>(ids.length).fill(null);
    let failure: { error: unknown } | undefined;
    await forEachBounded(ids.map((id, index) => ({ id, index })), STATUS_READ_CONCURRENCY, async ({ id, index }) => {
      if (failure) return;
      try {
        statuses[index] = await this.status(id);
      } catch (error) {
        failure ??= { error };
      }
    });
    if (failure) throw failure.error;
    return statuses.filter((status): status is AccountStatus => status !== null);
  }

  async status(accountId: string): Promise<AccountStatus | null> {
    const record = await readStatusRecord(this.options.redis, accountId, STATUS_SET_ASIDE_LIMIT);
    if (!record) return null;
    const { box, pending, stored, setAside: aside } = record;
    const live = this.host.actor(accountId)?.getSnapshot();
    const context = live?.context ?? (stored?.snapshot as { context?: AccountContext } | undefined)?.context;
    const lastError = context?.lastError ?? null;
    return {
      accountId,
      state: live ? String(live.value) : stored?.state || 'idle',
      dirty: box.dirty,
      pending,
      setAside: aside.count,
      setAsideFiles: aside.files.map((file) => ({ path: file.path, kind: file.kind, message: file.message, at: new Date(file.at).toISOString() })),
      folder: mirrorFolder(this.options.dataDir, accountId),
      lastSyncedAt: context?.lastSyncedAt ? new Date(context.lastSyncedAt).toISOString() : null,
      lastError: lastError ? { kind: lastError.kind, message: lastError.message, at: new Date(lastError.at).toISOString() } : null,
    };
  }

  /**
   * Converts the linked accounts a version before the current Redis layout wrote (docs/architecture.md,
   * "Upgrading from the two-hash layout"); how many it converted. Once per engine: `boot` waits for
   * it, and a process that takes webhooks calls it before it listens, since a webhook for an account
   * not converted yet would find it not linked.
   */
  upgradeStoredLayout(): Promise<number> {
    this.upgrading ??= this.accounts.linkedIds().then((ids) => upgradeOldLayout(this.options.redis, ids, this.options.log));
    return this.upgrading;
  }

  /** Converts an old layout, listens for wakes from other processes, then resumes the accounts with unfinished work. */
  async boot(): Promise<number> {
    await this.upgradeStoredLayout();
    await this.listenForWakes();
    return this.host.boot();
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    await this.host.close();
    // The stopped actors' downloads may still hold temp files opened ahead of their bytes: none is
    // left in a mirror by a graceful shutdown.
    await this.tempFiles.discardAll();
  }

  private wakeInBackground(accountId: string): void {
    this.deliver({ accountId, type: 'WEBHOOK' }).catch((error: unknown) => {
      this.options.log.error({ accountId, err: (error as Error).message }, 'could not wake the account; the sweep will retry');
    });
  }

  /** To the actor here if this process owns (or can take) the account, else to its owner. */
  private async deliver(message: WakeMessage & { type: 'WEBHOOK' | 'RESYNC' }): Promise<void> {
    if (!(await this.host.send(message.accountId, { type: message.type }))) await this.publish(message);
  }

  private async publish(message: WakeMessage): Promise<void> {
    await this.options.redis.publish(WAKE_CHANNEL, JSON.stringify(message));
  }

  private async listenForWakes(): Promise<void> {
    if (this.subscriber) return;
    // A subscribed connection can do nothing else, so wakes get their own.
    const subscriber = (this.options.redis as Redis).duplicate() as Redis | Cluster;
    this.subscriber = subscriber;
    subscriber.on('error', () => {});
    subscriber.on('message', (_channel: string, raw: string) => {
      let message: WakeMessage;
      try {
        message = JSON.parse(raw) as WakeMessage;
      } catch {
        return;
      }
      if (message.type === 'UNLINK') {
        this.host.cancelWaiting(message.accountId);
        if (this.host.actor(message.accountId)) void this.host.stop(message.accountId);
        this.forgetSession(message.accountId);
      } else if (message.type === 'RELINKED') {
        this.forgetSession(message.accountId);
        // As a link here would: the new credentials cut a backoff short and end a wait for a
        // re-link, whether or not the wake that follows reaches this process.
        const state = this.host.actor(message.accountId)?.getSnapshot().value;
        if (state === 'backoff' || state === 'awaitingRelink') this.host.deliverLocal(message.accountId, { type: 'RESYNC' });
      } else {
        this.host.deliverLocal(message.accountId, { type: message.type });
      }
    });
    if (subscriber.status !== 'ready') await subscriber.connect().catch(() => undefined);
    await subscriber.subscribe(WAKE_CHANNEL);
  }

  /** A re-link, an unlink or the actor leaving: the next session is built from Redis again. */
  private forgetSession(accountId: string): void {
    this.sessions.delete(accountId);
    this.linkAtStart.delete(accountId);
  }

  private async session(accountId: string): Promise<DropboxSession> {
    let session = this.sessions.get(accountId);
    if (!session) {
      const link = this.linkAtStart.get(accountId);
      const readAtStart = this.linkAtStart.delete(accountId);
      const account = readAtStart ? this.accounts.fromStored(accountId, link ?? null) : await this.accounts.get(accountId);
      if (!account) throw new Error(`account ${accountId} is not linked`);
      session = new DropboxSession(account.credentials, this.options.dropbox, () => account.credentialsDigest);
      // Cached only for an actor in memory: passivation (onReleased) is the only eviction, so a
      // session built after its actor left (a step outliving a passivation or a lost lease) would stay.
      if (this.host.actor(accountId)) this.sessions.set(accountId, session);
    }
    return session;
  }
}
