import { createActor, type Actor } from 'xstate';
import type { AccountEvent, AccountMachine } from '../../machines/account.machine.js';
import type { AccountStore } from '../accounts/account-store.js';
import type { Logger } from '../logger.js';
import type { Mailbox } from '../mailbox/mailbox.js';
import type { SyncStore } from '../sync/sync-store.js';
import { type ActorPersistence, validateSnapshot } from './actor-persistence.js';
import { type Clock, sleep } from './clock.js';

export type AccountActor = Actor<AccountMachine>;

export interface AccountHostOptions {
  /** The account machine with the real step actors provided. */
  machine: AccountMachine;
  persistence: ActorPersistence;
  mailbox: Mailbox;
  store: SyncStore;
  accounts: AccountStore;
  clock: Clock;
  log: Logger;
}

/**
 * Runs one actor per account in this process: creates or restores it from Redis on demand, persists
 * its snapshot after every transition, and restores every account with work left at boot, so an
 * interrupted sync resumes without waiting for a webhook.
 */
export class AccountHost {
  private readonly actors = new Map<string, AccountActor>();
  private readonly starting = new Map<string, Promise<AccountActor>>();
  private readonly writers = new Map<string, SnapshotWriter>();
  private closed = false;

  constructor(private readonly options: AccountHostOptions) {}

  /** Delivers an event to the account's actor, restoring or creating it first. */
  async send(accountId: string, event: AccountEvent): Promise<void> {
    const actor = await this.ensure(accountId);
    actor.send(event);
  }

  /** The actor in memory, if any (tests and status). */
  actor(accountId: string): AccountActor | undefined {
    return this.actors.get(accountId);
  }

  get size(): number {
    return this.actors.size;
  }

  /** Restores every linked account that has work left: a run going, a dirty mailbox, queued files. */
  async boot(): Promise<number> {
    const { accounts, mailbox, persistence, store } = this.options;
    let resumed = 0;
    for (const accountId of await accounts.linkedIds()) {
      const [box, stored, pending] = await Promise.all([mailbox.read(accountId), persistence.load(accountId), store.pendingCount(accountId)]);
      const busy = (stored !== null && stored.state !== 'idle') || box.status === 'running' || box.dirty || pending > 0;
      if (!busy) continue;
      const actor = await this.ensure(accountId);
      if (actor.getSnapshot().value === 'idle') actor.send({ type: 'WEBHOOK' });
      resumed++;
    }
    return resumed;
  }

  /** Stops the account's actor (unlink); its last snapshot is flushed first. */
  async stop(accountId: string): Promise<void> {
    const actor = this.actors.get(accountId);
    this.actors.delete(accountId);
    actor?.stop();
    await this.writers.get(accountId)?.flush();
    this.writers.delete(accountId);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.starting.values()].map((p) => p.catch(() => undefined)));
    await Promise.all([...this.actors.keys()].map((id) => this.stop(id)));
  }

  /** Resolves once every snapshot emitted so far is written (or given up on). */
  async flush(): Promise<void> {
    await Promise.all([...this.writers.values()].map((w) => w.flush()));
  }

  private ensure(accountId: string): Promise<AccountActor> {
    const existing = this.actors.get(accountId);
    if (existing) return Promise.resolve(existing);
    let pending = this.starting.get(accountId);
    if (!pending) {
      pending = this.start(accountId).finally(() => this.starting.delete(accountId));
      this.starting.set(accountId, pending);
    }
    return pending;
  }

  private async start(accountId: string): Promise<AccountActor> {
    if (this.closed) throw new Error('account host is closed');
    const { machine, persistence, log, mailbox } = this.options;
    const alog = log.child({ accountId });
    const stored = await persistence.load(accountId);
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
    const actor = createActor(machine, snapshot ? { snapshot: snapshot as never, input: { accountId } } : { input: { accountId } });
    const writer = new SnapshotWriter(accountId, stored?.version ?? 0, this.options);
    this.writers.set(accountId, writer);
    let lastState = '';
    actor.subscribe({
      next: (snap) => {
        if (snap.status !== 'active') return;
        const state = String(snap.value);
        if (state !== lastState) alog.info({ state, from: lastState || undefined, attempt: snap.context.attempt || undefined }, 'state');
        lastState = state;
        writer.push(actor.getPersistedSnapshot(), state);
      },
      // Without an error observer XState rethrows asynchronously and takes the process down.
      error: (error) => this.recover(accountId, actor, error),
    });
    this.actors.set(accountId, actor);
    actor.start();
    if (stored && snapshot) alog.info({ state: stored.state }, 'restored');
    if (fallBackToResync) {
      await mailbox.requestResync(accountId);
      actor.send({ type: 'RESYNC' });
    }
    return actor;
  }

  /** An actor that errored is rebuilt from its last persisted snapshot. */
  private recover(accountId: string, actor: AccountActor, error: unknown): void {
    this.options.log.error({ accountId, err: error }, 'actor failed; restoring it from its last snapshot');
    if (this.actors.get(accountId) !== actor) return;
    this.actors.delete(accountId);
    void sleep(this.options.clock, 1_000)
      .then(() => (this.closed ? undefined : this.send(accountId, { type: 'WEBHOOK' })))
      .catch((e: unknown) => this.options.log.error({ accountId, err: e }, 'could not restore the actor'));
  }
}

/**
 * Writes one actor's snapshots in order, latest wins: while a write is in flight only the newest
 * pending snapshot is kept. A failed write (Redis down) is retried until a newer one replaces it.
 */
class SnapshotWriter {
  private latest: { version: number; snapshot: unknown; state: string } | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly accountId: string, private version: number, private readonly options: AccountHostOptions) {}

  push(snapshot: unknown, state: string): void {
    this.latest = { version: ++this.version, snapshot, state };
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    let failures = 0;
    while (this.latest) {
      const next = this.latest;
      try {
        await this.options.persistence.save(this.accountId, next.version, next.snapshot, next.state, this.options.clock.now());
        if (this.latest === next) this.latest = undefined;
        failures = 0;
      } catch (error) {
        failures++;
        if (failures === 1) this.options.log.warn({ accountId: this.accountId, err: (error as Error).message }, 'snapshot write failed; retrying');
        if (failures > 20) {
          this.options.log.error({ accountId: this.accountId }, 'snapshot write gave up; the next transition writes again');
          this.latest = undefined;
          return;
        }
        await sleep(this.options.clock, Math.min(100 * 2 ** failures, 2_000));
      }
    }
  }
}
