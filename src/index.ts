/**
 * Mailroom as a library: the sync engine without the HTTP server, for a host application.
 *
 *   import { createEngine } from 'mailroom';
 *   const mailroom = await createEngine({ redisUrl: 'redis://127.0.0.1:6379', dataDir: './data', dropbox: { appKey, appSecret } });
 *   mailroom.on('entrySet', ({ accountId, entry }) => publish(accountId, entry));
 *   await mailroom.link('dbid:AAH…', { refreshToken });
 *
 * See docs/library.md.
 */
import { mkdir } from 'node:fs/promises';
import { ACCOUNT_STATES, type AccountStateName } from '../machines/account.machine.js';
import { credentialsSchema } from './accounts/account-store.js';
import { MAX_TIMER_MS, SETTING_BOUNDS } from './config.js';
import type { DropboxCredentials } from './dropbox/dropbox-session.js';
import { Engine, type AccountStatus, type EngineOptions } from './engine/engine.js';
import type { EngineEventMap } from './engine/engine-events.js';
import type { Entry } from './entries/entry-store.js';
import { silentLogger, type Logger } from './logger.js';
import { isPageRequestError, pageOptions } from './http/paging.js';
import type { WebhookOutcome } from './mailbox/mailbox.js';
import { loadScriptsOn, openRedis } from './redis/connection.js';
import { ACCOUNT_ID_RULE, isValidAccountId } from './redis/keys.js';
import type { RedisClient } from './redis/scripts.js';
import { createIgnoreRule } from './sync/paths.js';
import { markdownEntryBuilder, mirrorFolder, type EntryBuilder } from './sync/sync-deps.js';

export type { AccountStateName, AccountStatus, DropboxCredentials, EngineEventMap, Entry, EntryBuilder, Logger, RedisClient, WebhookOutcome };
export { markdownEntryBuilder };
export { isValidWebhookSignature, webhookAccounts } from './http/webhook-signature.js';
export { buildEntry, EntryBuildError, isPostPath, MAX_POST_BYTES } from './entries/build-entry.js';
export { createLogger } from './logger.js';

/** The names of the engine's events (`fileSynced`, `entrySet`, `entryDropped`, `state`, …). */
export type EngineEventName = keyof EngineEventMap;
/** The payload of one event, e.g. `EngineEvent<'entrySet'>` is `{ accountId, entry }`. */
export type EngineEvent<K extends EngineEventName> = EngineEventMap[K][0];

export interface DropboxOptions {
  /** The app key: needed to refresh tokens (accounts linked with a refresh token). */
  appKey?: string;
  /** The app secret: needed to refresh tokens. */
  appSecret?: string;
  /** Base URL of the API host (default Dropbox's, `https://api.dropboxapi.com`), e.g. an emulator. */
  apiUrl?: string;
  /** Base URL of the content (download) host (default Dropbox's; defaults to `apiUrl` when that is set). */
  contentUrl?: string;
  /** Deadline of one Dropbox call, body included (default 30 s). */
  callTimeoutMs?: number;
}

export interface CreateEngineOptions {
  /**
   * An ioredis client (`Redis` or `Cluster`) the host owns: the engine defines its scripts on it and
   * opens one duplicate for pub/sub; `close()` leaves the client open. Give this or `redisUrl`.
   */
  redis?: RedisClient;
  /** `redis://…` or `rediss://…`: the engine opens (and on `close()` quits) its own connection. */
  redisUrl?: string;
  /** Mirrors live in `<dataDir>/mirrors/<accountId>/` (created if missing). */
  dataDir: string;
  dropbox?: DropboxOptions;
  /** Which files become entries and how (default: `markdownEntryBuilder`, Markdown and text posts). */
  entryBuilder?: EntryBuilder;
  /** A pino logger (default: silent). `createLogger()` gives the server's JSON logs. */
  logger?: Logger;
  /** Downloads at once in the process, all accounts together (default 16). */
  downloadConcurrency?: number;
  /** Downloads at once for one account (default 4). */
  downloadsPerAccount?: number;
  /** `limit` sent to list_folder (default 2000). */
  pageLimit?: number;
  /** How often the reaper and the polling safety net run (default 10 s; 0 turns the sweep off). */
  sweepIntervalMs?: number;
  /** An idle account not listed for this long is listed again (default 15 min; 0: only webhooks and `notify`). */
  pollIntervalMs?: number;
  /** An account awaiting a re-link has its credentials tried again this long after the last try (default 1 h; 0: only a re-link or `resync`). */
  parkedRecheckMs?: number;
  /** Lease of an account's actor (default 15 s); see docs/architecture.md. */
  leaseTtlMs?: number;
  /** An idle actor leaves memory after this long (default 60 s). */
  idleTimeoutMs?: number;
  /** Base delay of in-call retries of Dropbox calls (default 250 ms). */
  retryBaseDelayMs?: number;
}

/** What `link` refuses before touching Redis: a bad account id, no token, an invalid ignore glob. */
export class InvalidInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInputError';
  }
}

/** One page of a listing: `limit` 1 to 1000 (default 500) is about how many it holds; `cursor` the `next` of the page before ('0' or none for the first). */
export interface PageOptions {
  limit?: number;
  cursor?: string;
}

export interface LinkOptions {
  /** Globs (picomatch, case-insensitive) of paths never synced, e.g. `["drafts/**"]`. */
  ignore?: string[];
}

export interface MailroomEngine {
  /** Links (or re-links) an account and starts its sync. Resolves once recorded, not when synced. */
  link(accountId: string, credentials: DropboxCredentials, options?: LinkOptions): Promise<void>;
  /** Stops the account's sync and forgets its credentials; the mirror and entries stay. False if it was not linked. */
  unlink(accountId: string): Promise<boolean>;
  /** The next listing is a full one, reconciled against the mirror. False if not linked. */
  resync(accountId: string): Promise<boolean>;
  /** A verified Dropbox webhook's accounts (see `isValidWebhookSignature`, `webhookAccounts`). */
  notify(accountIds: readonly string[]): Promise<Record<string, WebhookOutcome | 'invalid'>>;
  /** One account's status, or null when it is not linked. */
  status(accountId: string): Promise<AccountStatus | null>;
  /** The status of every linked account, sorted by id (code-unit order). Reads them all: see `accountsPage`. */
  accounts(): Promise<AccountStatus[]>;
  /**
   * The linked accounts' statuses a page at a time: pass each answer's `next` as the next call's
   * `cursor` until it is null. Each page is sorted by id, pages come in no order, any account may
   * come in more than one page (dedupe by id), and one linked or unlinked during the walk may not
   * come at all. With `state`, only the accounts in it (a page can then be empty with a `next`).
   */
  accountsPage(options?: PageOptions & { state?: AccountStateName }): Promise<{ accounts: AccountStatus[]; next: string | null }>;
  /** The account's entries, sorted by path. Reads them all: see `entriesPage`. */
  entries(accountId: string): Promise<Entry[]>;
  /** The account's entries a page at a time, as `accountsPage`; each page sorted by path. An account not linked has none (as `entries`). */
  entriesPage(accountId: string, options?: PageOptions): Promise<{ entries: Entry[]; next: string | null }>;
  /** The absolute path of the account's mirror folder. */
  folder(accountId: string): string;
  /**
   * Listens to an event; returns a function that stops listening. Listeners run synchronously in
   * the sync's flow: keep them quick. A throw (or a rejected promise) is logged, never breaks a sync.
   */
  on<K extends EngineEventName>(event: K, listener: (payload: EngineEvent<K>) => unknown): () => void;
  /** Stops the actors (their state is saved) and the sweep; quits Redis if the engine opened it. */
  close(): Promise<void>;
}

/**
 * The bounds of the numeric options, those of the environment's variables (config.ts): whole
 * numbers, a timer's at most MAX_TIMER_MS. NaN made every timer fire at once.
 */
const NUMERIC_OPTIONS: Record<string, readonly [min: number, max: number]> = {
  downloadConcurrency: SETTING_BOUNDS.downloadConcurrency,
  downloadsPerAccount: SETTING_BOUNDS.downloadsPerAccount,
  pageLimit: SETTING_BOUNDS.pageLimit,
  // 0 turns the sweep off here (the server has no such setting).
  sweepIntervalMs: [0, MAX_TIMER_MS],
  pollIntervalMs: [0, Number.MAX_SAFE_INTEGER],
  parkedRecheckMs: [0, Number.MAX_SAFE_INTEGER],
  leaseTtlMs: SETTING_BOUNDS.leaseTtlMs,
  idleTimeoutMs: SETTING_BOUNDS.timerMs,
  retryBaseDelayMs: SETTING_BOUNDS.timerMs,
  'dropbox.callTimeoutMs': SETTING_BOUNDS.timerMs,
};

function checkNumericOptions(options: CreateEngineOptions): void {
  const given: Record<string, unknown> = { ...options, 'dropbox.callTimeoutMs': options.dropbox?.callTimeoutMs };
  for (const [name, [min, max]] of Object.entries(NUMERIC_OPTIONS)) {
    const value = given[name];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new InvalidInputError(`${name} must be a whole number from ${min} to ${max}, got ${String(value)}`);
    }
  }
}

/**
 * Creates the engine, connects to Redis, and boots it: accounts with unfinished work (a sync the
 * last process did not finish) resume at once.
 */
export async function createEngine(options: CreateEngineOptions): Promise<MailroomEngine> {
  if (!options.redis === !options.redisUrl) throw new InvalidInputError('give exactly one of redis (an ioredis client) or redisUrl');
  if (!options.dataDir) throw new InvalidInputError('dataDir is required');
  checkNumericOptions(options);
  const log = options.logger ?? silentLogger;
  await mkdir(options.dataDir, { recursive: true });

  const ownsRedis = !options.redis;
  const redis: RedisClient = options.redis ?? (await openRedis(options.redisUrl!));
  // A client of the host's own: a failure here only costs each script's first call an EVAL.
  if (options.redis) await loadScriptsOn(options.redis).catch(() => {});

  const dropbox = options.dropbox ?? {};
  const engineOptions: EngineOptions = {
    redis,
    dataDir: options.dataDir,
    log,
    dropbox: {
      appKey: dropbox.appKey,
      appSecret: dropbox.appSecret,
      hosts: { api: dropbox.apiUrl, content: dropbox.contentUrl ?? dropbox.apiUrl },
      callTimeoutMs: dropbox.callTimeoutMs ?? 30_000,
    },
    entryBuilder: options.entryBuilder ?? markdownEntryBuilder,
    downloadConcurrency: options.downloadConcurrency,
    downloadsPerAccount: options.downloadsPerAccount,
    pageLimit: options.pageLimit,
    pollIntervalMs: options.pollIntervalMs ?? 900_000,
    parkedRecheckMs: options.parkedRecheckMs ?? 3_600_000,
    leaseTtlMs: options.leaseTtlMs,
    idleTimeoutMs: options.idleTimeoutMs,
    retryBaseDelayMs: options.retryBaseDelayMs,
  };
  const engine = new Engine(engineOptions);
  try {
    await engine.boot();
  } catch (error) {
    await engine.close().catch(() => undefined);
    if (ownsRedis) redis.disconnect();
    throw error;
  }

  const sweepIntervalMs = options.sweepIntervalMs ?? 10_000;
  const sweeper = sweepIntervalMs > 0
    ? setInterval(() => {
        engine.scheduledSweep(sweepIntervalMs).catch((error: unknown) => log.warn({ err: (error as Error).message }, 'sweep failed'));
      }, sweepIntervalMs)
    : undefined;
  sweeper?.unref();

  let closed: Promise<void> | undefined;
  const checkPage = (options: PageOptions) => {
    if (typeof options !== 'object' || options === null) throw new InvalidInputError(`page options must be an object like { limit: 500, cursor: next }, got ${String(options)}`);
    const page = pageOptions(options);
    if (isPageRequestError(page)) throw new InvalidInputError(page.message);
    return page;
  };
  const checkId = (accountId: string) => {
    if (!isValidAccountId(accountId)) throw new InvalidInputError(`invalid account id ${JSON.stringify(accountId)}: ${ACCOUNT_ID_RULE}`);
  };

  return {
    async link(accountId, credentials, linkOptions = {}) {
      checkId(accountId);
      const parsed = credentialsSchema.safeParse(credentials);
      if (!parsed.success) throw new InvalidInputError(`invalid credentials: ${parsed.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ')}`);
      // A re-link replaces the ignore rules: a misspelt option would link with none.
      const unknownOptions = typeof linkOptions === 'object' && linkOptions !== null ? Object.keys(linkOptions).filter((key) => key !== 'ignore') : [];
      if (unknownOptions.length) throw new InvalidInputError(`unknown link option ${unknownOptions.map((key) => JSON.stringify(key)).join(', ')}: the one option is ignore`);
      const ignore = linkOptions.ignore ?? [];
      try {
        createIgnoreRule(ignore);
      } catch (error) {
        throw new InvalidInputError((error as Error).message);
      }
      const { accessToken, refreshToken, accessTokenExpiresAt } = parsed.data;
      const linked = { ...(accessToken ? { accessToken } : {}), ...(refreshToken ? { refreshToken } : {}), ...(accessTokenExpiresAt !== undefined ? { accessTokenExpiresAt } : {}) };
      const problem = engine.credentialsProblem(linked);
      if (problem) throw new InvalidInputError(problem);
      await engine.link(accountId, linked, ignore);
    },
    async unlink(accountId) {
      checkId(accountId);
      return engine.unlink(accountId);
    },
    async resync(accountId) {
      checkId(accountId);
      return engine.resync(accountId);
    },
    notify: (accountIds) => engine.notify(accountIds),
    async status(accountId) {
      checkId(accountId);
      return engine.status(accountId);
    },
    async accounts() {
      return engine.statuses(await engine.accounts.linkedIds());
    },
    async accountsPage(options = {}) {
      const page = checkPage(options);
      const { state } = options;
      if (state !== undefined && !(ACCOUNT_STATES as readonly string[]).includes(state)) {
        throw new InvalidInputError(`state must be one of ${ACCOUNT_STATES.join(', ')}, got ${JSON.stringify(state)}`);
      }
      return engine.statusPage(page, state);
    },
    async entries(accountId) {
      checkId(accountId);
      return engine.entries.list(accountId);
    },
    async entriesPage(accountId, options = {}) {
      checkId(accountId);
      const page = checkPage(options);
      return engine.entries.listPage(accountId, page.cursor, page.limit);
    },
    folder(accountId) {
      checkId(accountId);
      return mirrorFolder(engine.options.dataDir, accountId);
    },
    on(event, listener) {
      const wrapped = (payload: never) => {
        try {
          const result = listener(payload);
          if (result instanceof Promise) result.catch((error: unknown) => log.warn({ event, err: (error as Error)?.message }, 'event listener failed'));
        } catch (error) {
          log.warn({ event, err: (error as Error)?.message }, 'event listener failed');
        }
      };
      const events = engine.events as unknown as { on(e: string, l: (p: never) => void): void; off(e: string, l: (p: never) => void): void };
      events.on(event, wrapped);
      return () => events.off(event, wrapped);
    },
    close() {
      closed ??= (async () => {
        if (sweeper) clearInterval(sweeper);
        await engine.close();
        if (ownsRedis) await redis.quit().catch(() => redis.disconnect());
      })();
      return closed;
    },
  };
}
