import { randomUUID } from 'node:crypto';
import { accountMachine, type AccountContext } from '../../machines/account.machine.js';
import { AccountStore } from '../accounts/account-store.js';
import { DropboxSession, type DropboxAppSettings, type DropboxCredentials } from '../dropbox/dropbox-session.js';
import { EntryStore } from '../entries/entry-store.js';
import type { Logger } from '../logger.js';
import { Mailbox, type WebhookOutcome } from '../mailbox/mailbox.js';
import { isValidAccountId } from '../redis/keys.js';
import type { RedisClient } from '../redis/scripts.js';
import { mirrorFolder, type SyncDeps } from '../sync/sync-deps.js';
import { SyncStore } from '../sync/sync-store.js';
import { AccountHost } from './account-host.js';
import { ActorPersistence } from './actor-persistence.js';
import { type Clock, systemClock } from './clock.js';
import { Semaphore } from './semaphore.js';
import { createStepActors } from './step-actors.js';

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
}

export interface AccountStatus {
  accountId: string;
  state: string;
  dirty: boolean;
  pending: number;
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
  private readonly sessions = new Map<string, DropboxSession>();

  constructor(readonly options: EngineOptions) {
    const { redis, log } = options;
    this.clock = options.clock ?? systemClock;
    this.accounts = new AccountStore(redis);
    this.mailbox = new Mailbox(redis);
    this.entries = new EntryStore(redis, { newId: randomUUID, clock: () => this.clock.now() });
    this.store = new SyncStore(redis);
    this.persistence = new ActorPersistence(redis);
    const deps: SyncDeps = {
      store: this.store,
      entries: this.entries,
      accounts: this.accounts,
      mailbox: this.mailbox,
      session: (accountId) => this.session(accountId),
      clock: this.clock,
      log,
      dataDir: options.dataDir,
      downloadSlots: new Semaphore(options.downloadConcurrency ?? 16),
      downloadsPerAccount: options.downloadsPerAccount ?? 4,
      pageLimit: options.pageLimit ?? 2000,
      random: options.random ?? Math.random,
      maxAttemptsPerCall: options.maxAttemptsPerCall ?? 4,
      retryBaseDelayMs: options.retryBaseDelayMs ?? 250,
    };
    this.host = new AccountHost({
      machine: accountMachine.provide({ actors: createStepActors(deps) }),
      persistence: this.persistence,
      mailbox: this.mailbox,
      store: this.store,
      accounts: this.accounts,
      clock: this.clock,
      log,
    });
  }

  /** Links (or re-links) an account and starts a sync. */
  async link(accountId: string, credentials: DropboxCredentials, ignore: string[] = []): Promise<void> {
    this.sessions.delete(accountId);
    const wake = await this.accounts.link(accountId, credentials, ignore, this.clock.now());
    // A re-link cuts a backoff short (a revoked token is the usual reason to re-link).
    await this.host.send(accountId, { type: wake ? 'WEBHOOK' : 'RESYNC' });
  }

  async unlink(accountId: string): Promise<boolean> {
    await this.host.stop(accountId);
    this.sessions.delete(accountId);
    return this.accounts.unlink(accountId);
  }

  async resync(accountId: string): Promise<boolean> {
    const outcome = await this.mailbox.requestResync(accountId);
    if (outcome === 'unknown') return false;
    await this.host.send(accountId, { type: 'RESYNC' });
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

  /** Accounts marked running with no actor here (a wake lost to a crash or a Redis blip) get one. */
  async sweep(): Promise<number> {
    let woken = 0;
    for (const accountId of await this.accounts.linkedIds()) {
      if (this.host.actor(accountId)) continue;
      const box = await this.mailbox.read(accountId);
      if (box.status !== 'running' && !box.dirty) continue;
      this.wakeInBackground(accountId);
      woken++;
    }
    return woken;
  }

  async status(accountId: string): Promise<AccountStatus | null> {
    const account = await this.accounts.get(accountId);
    if (!account) return null;
    const [box, pending, stored] = await Promise.all([this.mailbox.read(accountId), this.store.pendingCount(accountId), this.persistence.load(accountId)]);
    const live = this.host.actor(accountId)?.getSnapshot();
    const context = live?.context ?? (stored?.snapshot as { context?: AccountContext } | undefined)?.context;
    const lastError = context?.lastError ?? null;
    return {
      accountId,
      state: live ? String(live.value) : stored?.state || 'idle',
      dirty: box.dirty,
      pending,
      folder: mirrorFolder(this.options.dataDir, accountId),
      lastSyncedAt: context?.lastSyncedAt ? new Date(context.lastSyncedAt).toISOString() : null,
      lastError: lastError ? { kind: lastError.kind, message: lastError.message, at: new Date(lastError.at).toISOString() } : null,
    };
  }

  async boot(): Promise<number> {
    return this.host.boot();
  }

  async close(): Promise<void> {
    await this.host.close();
  }

  private wakeInBackground(accountId: string): void {
    this.host.send(accountId, { type: 'WEBHOOK' }).catch((error: unknown) => {
      this.options.log.error({ accountId, err: (error as Error).message }, 'could not wake the account; the sweep will retry');
    });
  }

  private async session(accountId: string): Promise<DropboxSession> {
    let session = this.sessions.get(accountId);
    if (!session) {
      const account = await this.accounts.get(accountId);
      if (!account) throw new Error(`account ${accountId} is not linked`);
      session = new DropboxSession(account.credentials, this.options.dropbox);
      this.sessions.set(accountId, session);
    }
    return session;
  }
}
