import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import { type AccountEvent, type AccountMachine, type AccountStateName, RESTING_STATES } from '../../machines/account.machine.js';
import { MAX_RETRY_DELAY_MS } from '../sync/sync-failure.js';
import type { AccountStore } from '../accounts/account-store.js';
import type { Logger } from '../logger.js';
import { hasWork, type Mailbox } from '../mailbox/mailbox.js';
import type { Lease, Leases } from '../ownership/leases.js';
import { isFencedError } from '../redis/scripts.js';
import type { SyncStore } from '../sync/sync-store.js';
import type { EngineEvents } from './engine-events.js';
import { type ActorPersistence, parseStoredActor, validateSnapshot } from './actor-persistence.js';
import { AbortedError, type Clock, sleep, systemClock } from './clock.js';
import { forEachBounded } from './semaphore.js';

export type AccountActor = Actor<AccountMachine>;

export interface AccountHostOptions {
  /** The account machine with the real step actors provided. */
  machine: AccountMachine;
  persistence: ActorPersistence;
  mailbox: Mailbox;
  store: SyncStore;
  accounts: AccountStore;
  leases: Leases;
  clock: Clock;
  log: Logger;
  events: EngineEvents;
  /** An idle actor is stopped and dropped from memory (its lease released) after this long. */
  idleTimeoutMs: number;
  /** At most this many accounts run (are not idle) at once in this process; the rest wait their turn. */
  maxActiveRuns: number;
  /** Called once an actor left memory (passivation, loss, stop): drop what is cached for it. */
  onReleased?: (accountId: string) => void;
  /**
   * The credentials an actor was refused have been replaced (a re-link this process may not have
   * heard of): drop whatever was built from the old ones before the actor tries again.
   */
  onCredentialsReplaced?: (accountId: string) => void;
  /** Called with the fresh lease just before an actor starts: what the grant read can serve its first steps. */
  onStarting?: (accountId: string, lease: Lease) => void;
  /**
   * A wake that waited here for a run slot found, once it got one, that another process owns the
   * account: pass it on to that process (the engine publishes it on the wake channel).
   */
  forward?: (accountId: string, event: AccountEvent) => void;
  /** Longest a state may last before the watchdog restarts the actor from its last snapshot (resting states have none). */
  stateDeadlinesMs: Record<Exclude<AccountStateName, 'idle' | 'awaitingRelink'>, number>;
  watchdogIntervalMs: number;
  /** Passed to every actor (the Stately inspector when INSPECT=1). */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

/**
 * Generous on purpose: they catch a step that hangs despite every call having a timeout (a bug, a
 * stuck file system), not a slow sync. Restarting is always safe: each step is idempotent and a
 * restarted download step only sees what is still queued.
 */
export const DEFAULT_STATE_DEADLINES_MS: AccountHostOptions['stateDeadlinesMs'] = {
  fetching: 15 * 60_000,
  applying: 15 * 60_000,
  downloading: 2 * 60 * 60_000,
  finishing: 2 * 60_000,
  backoff: MAX_RETRY_DELAY_MS + 5 * 60_000,
};

const BOOT_CONCURRENCY = 32;

const isResting = (state: unknown) => (RESTING_STATES as readonly unknown[]).includes(state);

/**
 * A state from which an event can start a run: resting, or a backoff that a RESYNC cuts short.
 * Such a run takes a run slot first, or waits for one, like any other.
 */
const holdsNoSlot = (state: unknown) => isResting(state) || state === 'backoff';

/** A token no fence ever holds: what this process writes with for an account it does not own. */
const NOT_OWNER = 'not-owner';

/**
 * Runs the actors of the accounts this process owns. An actor exists only while the process holds
 * the account's lease: it is created or restored from Redis on demand, its snapshot is persisted
 * after every transition (fenced by the lease's token), the lease is renewed while it lives, and an
 * idle actor is passivated: stopped, dropped from memory, lease released. Losing the lease (expired,
 * taken over, a write refused as FENCED) stops the actor at once; the new owner carries on from Redis.
 */
export class AccountHost {
  private readonly actors = new Map<string, AccountActor>();
  private readonly starting = new Map<string, Promise<AccountActor | null>>();
  private readonly writers = new Map<string, SnapshotWriter>();
  private readonly leases = new Map<string, Lease>();
  private readonly stopping = new Map<string, Promise<StopOutcome>>();
  /** Accounts holding a run slot: a run going here, or one a wake reserved as it starts the actor. */
  private readonly active = new Set<string>();
  private readonly waiting = new Map<string, AccountEvent>();
  /**
   * Runs already under way that wait for a run slot (a retry leaving backoff, an actor restored
   * mid-run), in the order they asked, each with what grants it the slot; served before the
   * waiting wakes. One per account at most: an actor invokes one step at a time. The watchdog does
   * not count this wait against the state's deadline.
   */
  private readonly retries = new Map<string, () => void>();
  private readonly idleTimers = new Map<string, NodeJS.Timeout>();
  /** When each actor in memory entered its current state (real time: the watchdog's clock). */
  private readonly enteredAt = new Map<string, { state: string; at: number }>();
  private readonly renewal: NodeJS.Timeout;
  private readonly watchdog: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: AccountHostOptions) {
    // Real time, not the engine's clock: the lease expires in Redis's time, whatever tests simulate.
    this.renewal = setInterval(() => void this.renewLeases(), Math.max(50, Math.floor(options.leases.ttlMs / 3)));
    this.renewal.unref();
    this.watchdog = setInterval(() => this.checkDeadlines(), options.watchdogIntervalMs);
    this.watchdog.unref();
  }

  /** The fencing token this process writes an account's state with. */
  fenceToken(accountId: string): string {
    const lease = this.leases.get(accountId);
    return lease ? String(lease.token) : NOT_OWNER;
  }

  /**
   * Delivers an event to the account's actor, restoring or creating it first. False when another
   * process owns the account (it gets the wake through the engine's wake channel).
   */
  async send(accountId: string, event: AccountEvent): Promise<boolean> {
    // A storm of wakes would start every run at once and slow them all down: past the limit, an
    // idle account waits its turn here (its mailbox already says running, so nothing is lost, and
    // the reaper would find it if this process died).
    const current = this.actors.get(accountId);
    const startsRun = (!current || holdsNoSlot(current.getSnapshot().value)) && !this.active.has(accountId);
    if (startsRun) {
      if (this.active.size >= this.options.maxActiveRuns) {
        const waiting = this.waiting.get(accountId);
        this.waiting.set(accountId, waiting?.type === 'RESYNC' ? waiting : event);
        return true;
      }
      this.active.add(accountId); // the slot is taken now, not when the actor gets there
    }
    let actor: AccountActor | null;
    try {
      actor = await this.ensure(accountId);
    } catch (error) {
      // A lease grant that failed (Redis timed out) must not keep the slot: nothing would free it.
      if (startsRun) this.runEnded(accountId);
      throw error;
    }
    if (!actor) {
      if (startsRun) this.runEnded(accountId);
      return false;
    }
    actor.send(event);
    // The event started nothing (a WEBHOOK in backoff, an event the state ignores): give the slot back.
    if (startsRun && holdsNoSlot(actor.getSnapshot().value)) this.runEnded(accountId);
    return true;
  }

  /**
   * Resolves once the account holds a run slot (at once when it does already: every step asks).
   * A retry leaving backoff (which gave its slot back) and an actor restored mid-run wait their
   * turn, so neither an outage that fails every run nor a restart can run all of them at once.
   */
  runSlot(accountId: string, signal: AbortSignal): Promise<void> {
    // A step already cancelled must not take a slot: nothing would give it back.
    if (signal.aborted) return Promise.reject(new AbortedError());
    if (this.active.has(accountId) || this.active.size < this.options.maxActiveRuns) {
      this.active.add(accountId);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', abandon);
        this.active.add(accountId);
        // The state's deadline counts from here: the wait for the slot was not the step's.
        const entered = this.enteredAt.get(accountId);
        if (entered) entered.at = Date.now();
        resolve();
      };
      const abandon = () => {
        if (this.retries.get(accountId) === grant) this.retries.delete(accountId);
        reject(new AbortedError());
      };
      signal.addEventListener('abort', abandon, { once: true });
      this.retries.set(accountId, grant);
    });
  }

  /** A run ended (or its actor left): let the next waiting retry, or else account, start. */
  private runEnded(accountId: string): void {
    if (!this.active.delete(accountId)) return;
    const next = this.retries.entries().next();
    if (!next.done) {
      const [nextId, grant] = next.value;
      this.retries.delete(nextId);
      grant();
      return;
    }
    void this.startWaiting();
  }

  /**
   * Starts the next waiting account that still has work to do. While it waited, another process
   * may have taken it over (the reaper: its mailbox said running and nobody held its lease) and
   * synced it: a wake served then would be a whole run for nothing.
   */
  private async startWaiting(): Promise<void> {
    while (!this.closed && this.active.size < this.options.maxActiveRuns) {
      const next = this.waiting.entries().next();
      if (next.done) return;
      const [nextId, event] = next.value;
      this.waiting.delete(nextId);
      const box = await this.options.mailbox.read(nextId).catch(() => undefined);
      if (box && !hasWork(box)) continue;
      this.send(nextId, event).then(
        (delivered) => { if (!delivered) this.options.forward?.(nextId, event); },
        (error: unknown) => this.options.log.error({ accountId: nextId, err: (error as Error).message }, 'could not start a waiting run; the reaper will retry'),
      );
      return;
    }
  }

  /** The account was unlinked: a wake waiting here for a run slot must not start an actor for it later. */
  cancelWaiting(accountId: string): void {
    this.waiting.delete(accountId);
  }

  /** Delivers to an actor already in memory only (a wake published by another process). */
  deliverLocal(accountId: string, event: AccountEvent): boolean {
    const actor = this.actors.get(accountId);
    if (!actor) return false;
    if (!holdsNoSlot(actor.getSnapshot().value)) {
      actor.send(event);
      return true;
    }
    // A wake that starts a run takes a run slot, or waits for one, as a wake from this process does.
    this.send(accountId, event).catch((error: unknown) => this.options.log.error({ accountId, err: (error as Error).message }, 'could not deliver a wake from another process; the reaper will retry'));
    return true;
  }

  /** The actor in memory, if any (tests and status). */
  actor(accountId: string): AccountActor | undefined {
    return this.actors.get(accountId);
  }

  /** The state of the account's actor if this process runs it (fresher than anything stored). */
  liveState(accountId: string): string | undefined {
    const actor = this.actors.get(accountId);
    return actor ? String(actor.getSnapshot().value) : undefined;
  }

  /** Whether this process already has the account in hand: its actor is here, starting, or waiting for a run slot. */
  handles(accountId: string): boolean {
    return this.actors.has(accountId) || this.starting.has(accountId) || this.waiting.has(accountId);
  }

  get size(): number {
    return this.actors.size;
  }

  /** Restores every linked account that has work left and that no live process owns. */
  async boot(): Promise<number> {
    const { accounts, mailbox, persistence, store } = this.options;
    let resumed = 0;
    // A few at a time: one after another costs a few round trips per account (1.4 s for 1,000 in the
    // restart benchmark), all at once would flood Redis and Dropbox after a restart.
    const ids = await accounts.linkedIds();
    const results = await forEachBounded(ids, BOOT_CONCURRENCY, async (accountId) => {
      // A shutdown during the boot (close): the accounts not reached yet are left to the next process.
      if (this.closed) return;
      // Three small reads (the lease grant reads the snapshot itself): a whole actor read in a
      // transaction for every linked account made a boot over 100,000 idle ones last 26 s.
      const [box, storedState, pending] = await Promise.all([mailbox.read(accountId), persistence.storedState(accountId), store.pendingCount(accountId)]);
      if (this.closed) return;
      // Parked until a re-link: a restart gives its credentials no better chance.
      if (box.status === 'parked') return;
      // (A resting actor with work in its mailbox is woken like an idle one: an account awaiting a
      // re-link whose mailbox says running was re-linked, and its owner died before the wake.)
      const midRun = storedState !== null && !isResting(storedState);
      if (!midRun && !hasWork(box) && pending === 0) return;
      // Restored at once, each actor in its state; its step waits for a run slot (runSlot), and an
      // idle one's wake waits in line as any wake does: a restart never runs past maxActiveRuns.
      if (midRun) {
        if (!(await this.ensure(accountId))) return;
      } else if (!(await this.send(accountId, { type: 'WEBHOOK' }))) return;
      resumed++;
    });
    results.forEach((result, index) => {
      // One account that cannot be resumed now must not keep the others from it; the reaper retries.
      if (result.status === 'rejected') this.options.log.error({ accountId: ids[index], err: (result.reason as Error)?.message }, 'could not resume the account at boot');
    });
    return resumed;
  }

  /**
   * Stops the account's actor (unlink, shutdown, passivation): its last snapshot is flushed, its
   * lease released. Until that is done no new actor of the account starts here (see ensure).
   */
  stop(accountId: string): Promise<StopOutcome> {
    const running = this.stopping.get(accountId);
    if (running) return running;
    const done = this.stopNow(accountId).finally(() => this.stopping.delete(accountId));
    this.stopping.set(accountId, done);
    return done;
  }

  private async stopNow(accountId: string): Promise<StopOutcome> {
    // Everything this stop owns is taken before the first await, so it can only ever remove its own.
    const actor = this.actors.get(accountId);
    const writer = this.writers.get(accountId);
    const lease = this.leases.get(accountId);
    this.forget(accountId);
    actor?.stop();
    await writer?.flush();
    if (this.writers.get(accountId) === writer) this.writers.delete(accountId);
    if (lease && this.leases.get(accountId) === lease) this.leases.delete(accountId);
    if (!lease) return { workWaiting: null };
    const released = await this.options.leases.release(lease).catch(() => null);
    return { workWaiting: released?.workWaiting ?? null };
  }

  /**
   * Graceful shutdown: every actor stopped, every snapshot flushed, every lease released. Stops
   * already under way (a passivation, a watchdog restart, an unlink) are waited for too: their
   * actor has left `actors` already, and a lease they release after the caller quits Redis would
   * keep the account from the next process until LEASE_TTL_MS.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.renewal);
    clearInterval(this.watchdog);
    await Promise.all([...this.starting.values()].map((p) => p.catch(() => undefined)));
    await Promise.all([...this.actors.keys()].map((id) => this.stop(id)));
    while (this.stopping.size > 0) await Promise.all([...this.stopping.values()].map((p) => p.catch(() => undefined)));
  }

  /** Resolves once every snapshot emitted so far is written (or given up on). */
  async flush(): Promise<void> {
    await Promise.all([...this.writers.values()].map((w) => w.flush()));
  }

  /**
   * This process no longer owns the account (lease lost, a write refused): stop the actor without
   * writing anything more. The new owner continues from what is in Redis.
   */
  lostOwnership(accountId: string, reason: string, token: string): void {
    // Only the lease the failure was about: a newer lease of the same account (passivated, then
    // taken again) must not be revoked by a late answer about the old one.
    if (this.fenceToken(accountId) !== token) return;
    const actor = this.actors.get(accountId);
    this.options.log.warn({ accountId, reason }, 'lost ownership of the account: actor stopped');
    this.forget(accountId);
    this.leases.delete(accountId);
    this.writers.get(accountId)?.abandon();
    this.writers.delete(accountId);
    actor?.stop();
  }

  private forget(accountId: string): void {
    this.actors.delete(accountId);
    // Its place in line goes with it (its step's abort would remove it too, a moment later): a
    // slot freed meanwhile must go to another account, never to an actor being stopped.
    this.retries.delete(accountId);
    this.runEnded(accountId);
    this.options.onReleased?.(accountId);
    this.enteredAt.delete(accountId);
    clearTimeout(this.idleTimers.get(accountId));
    this.idleTimers.delete(accountId);
  }

  private async ensure(accountId: string): Promise<AccountActor | null> {
    // A wake during a stop waits for it: starting now would re-acquire the lease the stop is about
    // to release, leaving the new actor running without one.
    const stopping = this.stopping.get(accountId);
    if (stopping) await stopping;
    const existing = this.actors.get(accountId);
    if (existing) return existing;
    let pending = this.starting.get(accountId);
    if (!pending) {
      pending = this.start(accountId).finally(() => this.starting.delete(accountId));
      this.starting.set(accountId, pending);
    }
    return pending;
  }

  private async start(accountId: string): Promise<AccountActor | null> {
    if (this.closed) return null;
    const { machine, log, mailbox } = this.options;
    const alog = log.child({ accountId });
    const lease = await this.options.leases.acquire(accountId);
    if (!lease) return null;
    if (!lease.link) {
      // Unlinked meanwhile (a wake that waited for a run slot, a late message): no actor to run.
      await this.options.leases.release(lease).catch(() => null);
      return null;
    }
    this.leases.set(accountId, lease);
    const stored = parseStoredActor(accountId, lease.stored);
    let snapshot: unknown;
    let fallBackToResync = false;
    if (stored) {
      const check = validateSnapshot(machine, stored, accountId);
      if (check.ok) snapshot = check.snapshot;
      else {
        alog.error({ reason: check.reason, state: stored.state }, 'stored snapshot cannot be restored: starting fresh with a full resync');
        fallBackToResync = true;
      }
    }
    if (fallBackToResync) {
      // Before the fresh actor's first snapshot replaces the one that cannot be restored: should
      // this fail, the next start finds that snapshot again and falls back again (after it, the
      // resync asked for here would be lost and the account only continue from its cursor).
      const failure = await mailbox.requestResync(accountId).then(() => null, (error: unknown) => error ?? new Error('requestResync failed'));
      // A stop meanwhile (an unlink) found no actor and released the lease itself: start none.
      const stopped = this.leases.get(accountId) !== lease;
      if (failure || stopped || this.closed) {
        if (!stopped) {
          this.leases.delete(accountId);
          await this.options.leases.release(lease).catch(() => null);
        }
        if (failure) throw failure;
        return null;
      }
    }
    const inspect = this.options.inspect ? { inspect: this.options.inspect } : {};
    const actor = createActor(machine, snapshot ? { snapshot: snapshot as never, input: { accountId }, ...inspect } : { input: { accountId }, ...inspect });
    const writer = new SnapshotWriter(accountId, stored?.version ?? 0, this.options, {
      onFenced: (reason) => this.lostOwnership(accountId, reason, String(lease.token)),
      onRelinked: () => this.relinkedWhileRefused(accountId, actor),
      onParkingUnknown: () => {
        this.options.mailbox.read(accountId).then(
          (box) => { if (box.status !== 'parked') this.relinkedWhileRefused(accountId, actor); },
          // Unreadable now: passivation reads the mailbox again when the actor leaves.
          () => undefined,
        );
      },
    });
    this.writers.set(accountId, writer);
    let lastState = '';
    // The first snapshot of a restored actor is the one just read: writing it again is a wasted command.
    let unchangedSinceRestore = snapshot !== undefined;
    actor.subscribe({
      next: (snap) => {
        if (snap.status !== 'active' || this.actors.get(accountId) !== actor) return;
        const state = String(snap.value);
        if (state !== lastState) {
          alog.info({ state, from: lastState || undefined, attempt: snap.context.attempt || undefined }, 'state');
          const previous = this.enteredAt.get(accountId);
          const now = Date.now();
          if (lastState) this.options.events.report('state', { accountId, from: lastState, to: state, durationMs: previous ? now - previous.at : 0 });
          // A run starts from idle, or straight after the last one when a webhook came during it
          // (finishing -> fetching, never idle in between). Not a retry (backoff, awaitingRelink).
          if ((lastState === 'idle' || lastState === 'finishing') && state === 'fetching') this.options.events.report('syncStarted', { accountId });
          this.enteredAt.set(accountId, { state, at: now });
          this.scheduleIdle(accountId, actor, state);
          // (A new or restored actor's first snapshot is not the end of a run: its slot may be
          // reserved.) A run's slot is taken by the wake that starts it (send) or by its step
          // (runSlot), never here: taking one here without the limit would count an account that
          // is still waiting in line.
          // A backoff gives its slot back: an account that keeps failing would otherwise hold it
          // for good, and enough of them would stop every other run here. Its retry waits for a
          // slot again (runSlot, from the backoff's waitUntil).
          if ((isResting(state) && lastState) || state === 'backoff') this.runEnded(accountId);
        }
        lastState = state;
        if (unchangedSinceRestore) unchangedSinceRestore = false;
        else writer.push(actor.getPersistedSnapshot(), state);
      },
      // Without an error observer XState rethrows asynchronously and takes the process down.
      error: (error) => this.recover(accountId, actor, error),
    });
    this.actors.set(accountId, actor);
    this.options.onStarting?.(accountId, lease);
    actor.start();
    if (stored && snapshot) alog.info({ state: stored.state, token: lease.token }, 'restored');
    if (fallBackToResync) actor.send({ type: 'RESYNC' });
    return actor;
  }

  /**
   * The actor's credentials were refused, but a re-link replaced them before its snapshot was saved
   * (while the refused step ran, or just after): the save did not park the account, and the
   * re-link's own wake may have found the run still going. Wake it now, as a re-link would.
   */
  private relinkedWhileRefused(accountId: string, actor: AccountActor): void {
    if (this.actors.get(accountId) !== actor || actor.getSnapshot().value !== 'awaitingRelink') return;
    this.options.log.info({ accountId }, 'credentials refused, but replaced by a re-link since: trying the new ones');
    // A session cached from the old credentials (a RELINKED message this process missed) would be
    // refused again at once, and again after every wake, with no backoff in between.
    this.options.onCredentialsReplaced?.(accountId);
    this.send(accountId, { type: 'RESYNC' }).catch((error: unknown) => this.options.log.error({ accountId, err: (error as Error).message }, 'could not wake the re-linked account; the reaper will retry'));
  }

  private scheduleIdle(accountId: string, actor: AccountActor, state: string): void {
    clearTimeout(this.idleTimers.get(accountId));
    this.idleTimers.delete(accountId);
    if (!isResting(state)) return;
    const timer = setTimeout(() => void this.passivate(accountId, actor), this.options.idleTimeoutMs);
    timer.unref();
    this.idleTimers.set(accountId, timer);
  }

  /**
   * Drops a resting actor from memory (idle, or awaiting a re-link). A webhook that arrives
   * meanwhile is never lost: either it woke the actor before it stopped (then it is no longer
   * resting and stays), or it finds the lease
   * released and starts a new actor, or it found the lease still held and published a wake that
   * arrived here too late; the mailbox check after the release catches that last case.
   */
  private async passivate(accountId: string, actor: AccountActor): Promise<void> {
    if (this.actors.get(accountId) !== actor || !isResting(actor.getSnapshot().value)) return;
    const { workWaiting } = await this.stop(accountId);
    this.options.log.debug({ accountId }, 'passivated');
    // Read by the release itself when there was a lease to release (one round trip instead of two).
    const work = workWaiting ?? (await this.options.mailbox.read(accountId).then(hasWork, () => false));
    if (work && !this.closed) {
      await this.send(accountId, { type: 'WEBHOOK' }).catch(() => false);
    }
  }

  /**
   * The watchdog: a state that overstays its deadline is logged and the actor is restarted from its
   * last persisted snapshot (the same state, with its step invoked afresh).
   */
  private checkDeadlines(): void {
    const now = Date.now();
    for (const [accountId, entered] of this.enteredAt) {
      if (isResting(entered.state) || this.retries.has(accountId)) continue;
      const deadline = this.options.stateDeadlinesMs[entered.state as keyof AccountHostOptions['stateDeadlinesMs']];
      if (deadline === undefined || now - entered.at < deadline) continue;
      this.options.log.error({ accountId, state: entered.state, overstayedMs: now - entered.at - deadline }, 'state overstayed its deadline: restarting the actor from its last snapshot');
      this.enteredAt.delete(accountId);
      void this.stop(accountId)
        .then(() => this.resume(accountId))
        .catch((error: unknown) => this.options.log.error({ accountId, err: error }, 'watchdog restart failed; the reaper will retry'));
    }
  }

  /** All at once: renewing one lease after another could let the last ones expire on a busy process. */
  private async renewLeases(): Promise<void> {
    await Promise.all(
      [...this.leases].map(async ([accountId, lease]) => {
        try {
          if (!(await this.options.leases.renew(lease))) this.lostOwnership(accountId, 'lease expired or taken over', String(lease.token));
        } catch {
          // Redis unreachable: keep going; if it stays down past the TTL, the fence protects the data.
        }
      }),
    );
  }

  /**
   * Restores the actor from its last persisted snapshot (it carries on where it was); a resting one
   * is woken only if its mailbox has work. No event is sent to a restored run: it needs none.
   */
  private async resume(accountId: string): Promise<void> {
    if (this.closed) return;
    const actor = await this.ensure(accountId);
    if (!actor || !isResting(actor.getSnapshot().value)) return;
    const box = await this.options.mailbox.read(accountId);
    if (hasWork(box)) await this.send(accountId, { type: 'WEBHOOK' });
  }

  /** An actor that errored is rebuilt from its last persisted snapshot. */
  private recover(accountId: string, actor: AccountActor, error: unknown): void {
    if (this.actors.get(accountId) !== actor) return;
    this.options.log.error({ accountId, err: error }, 'actor failed; restoring it from its last snapshot');
    void this.stop(accountId)
      .then(() => sleep(systemClock, 1_000))
      .then(() => this.resume(accountId))
      .catch((e: unknown) => this.options.log.error({ accountId, err: e }, 'could not restore the actor'));
  }
}

/** How a stop ended: whether the mailbox had work right after the lease was released (null: unknown). */
interface StopOutcome {
  workWaiting: boolean | null;
}

/**
 * Writes one actor's snapshots in order, latest wins: while a write is in flight only the newest
 * pending snapshot is kept. A failed write (Redis down) is retried until a newer one replaces it; a
 * FENCED refusal means another process owns the account now.
 */
class SnapshotWriter {
  private latest: { version: number; snapshot: unknown; state: string } | undefined;
  private running: Promise<void> | undefined;
  private abandoned = false;

  constructor(
    private readonly accountId: string,
    private version: number,
    private readonly options: AccountHostOptions,
    private readonly on: { onFenced: (reason: string) => void; onRelinked: () => void; onParkingUnknown: () => void },
  ) {}

  push(snapshot: unknown, state: string): void {
    if (this.abandoned) return;
    this.latest = { version: ++this.version, snapshot, state };
    this.kick();
  }

  /**
   * Starts a drain unless one runs. A snapshot pushed after a drain's last check but before it
   * settled would otherwise wait for the next push, which never comes for an actor gone idle: so
   * a settling drain looks again.
   */
  private kick(): void {
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.latest && !this.abandoned) this.kick();
    });
  }

  abandon(): void {
    this.abandoned = true;
    this.latest = undefined;
  }

  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    let failures = 0;
    let failedOn: typeof this.latest;
    while (this.latest && !this.abandoned) {
      const next = this.latest;
      try {
        const saved = await this.options.persistence.save(this.accountId, next.version, next.snapshot, next.state, this.options.clock.now());
        if (this.latest === next) this.latest = undefined;
        failures = 0;
        if (saved === 'relinked') this.on.onRelinked();
        // An earlier attempt of this very write landed, its answer lost (a timeout): whether it
        // parked the account or found it re-linked is for the mailbox to say.
        else if (saved === 'stale' && failedOn === next && next.state === 'awaitingRelink') this.on.onParkingUnknown();
      } catch (error) {
        failedOn = next;
        if (isFencedError(error)) {
          this.abandon();
          this.on.onFenced('a snapshot write was refused (FENCED)');
          return;
        }
        failures++;
        if (failures === 1) this.options.log.warn({ accountId: this.accountId, err: (error as Error).message }, 'snapshot write failed; retrying');
        if (failures > 20) {
          this.options.log.error({ accountId: this.accountId }, 'snapshot write gave up; the next transition writes again');
          this.latest = undefined;
          return;
        }
        await sleep(systemClock, Math.min(100 * 2 ** failures, 2_000));
      }
    }
  }
}
