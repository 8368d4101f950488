import { createActor, type Snapshot } from 'xstate';
import { ACCOUNT_STATES, accountMachine, type AccountMachine } from '../../machines/account.machine.js';
import { accountKeys } from '../redis/keys.js';
import { runFencedScript, UNFENCED, type Fence, type FenceTokenOf, type RedisClient } from '../redis/scripts.js';

/** Bump when the machine changes in a way old snapshots cannot be restored into. */
export const SNAPSHOT_SCHEMA = 1;

export interface StoredActor {
  version: number;
  schema: number;
  state: string;
  updatedAt: number;
  snapshot: unknown;
  /** Expanded from a compact idle record: built from this machine's own resolveState, so valid. */
  compact?: boolean;
}

/** What an idle actor adds to the machine's defaults: all an idle account keeps in Redis. */
export interface IdleRecord {
  runs: number;
  lastSyncedAt: number | null;
}

/**
 * Persisted actor snapshots, written with a version compare-and-set so an older one never wins. An
 * idle actor is stored as an IdleRecord in the mailbox (about 60 bytes instead of a 640-byte hash)
 * and expanded back into XState's persisted snapshot when loaded, so callers see one format.
 */
export class ActorPersistence {
  constructor(private readonly redis: RedisClient, private readonly fenceOf: FenceTokenOf = UNFENCED) {}

  /** The account's fence key and the token this process writes with. */
  private fence(accountId: string): Fence {
    return { key: accountKeys(accountId).fence, token: this.fenceOf(accountId) };
  }

  /**
   * `relinked`: saved, but the account was not parked although the snapshot awaits a re-link: the
   * credentials Dropbox refused have been replaced since (the caller wakes the actor).
   */
  async save(accountId: string, version: number, snapshot: unknown, state: string, now: number): Promise<'saved' | 'stale' | 'relinked'> {
    const k = accountKeys(accountId);
    const idle = idleRecordOf(snapshot);
    const rest = idle ? [idle.runs, idle.lastSyncedAt ?? ''] : [JSON.stringify(snapshot), SNAPSHOT_SCHEMA, state === 'awaitingRelink' ? refusedCredentials(snapshot) : ''];
    const saved = await runFencedScript<number>(this.redis, 'actorSave', this.fence(accountId), [k.mailbox, k.actor, k.credentials], [version, now, idle ? 'compact' : state, ...rest]);
    return saved === 2 ? 'relinked' : saved === 1 ? 'saved' : 'stale';
  }

  /**
   * The name of the state a whole snapshot is stored in, or null when none is (an idle actor is
   * compact, in the mailbox): what boot asks of every linked account, without reading a snapshot.
   */
  async storedState(accountId: string): Promise<string | null> {
    return this.redis.hget(accountKeys(accountId).actor, 'state');
  }

  async load(accountId: string): Promise<StoredActor | null> {
    const k = accountKeys(accountId);
    // One transaction: a save between two separate reads could pair a new version with an old state.
    const replies = await this.redis.multi().hgetall(k.actor).hmget(k.mailbox, ...ACTOR_MAILBOX_FIELDS).exec();
    if (!replies) throw new Error('actor load: transaction aborted');
    for (const [error] of replies) if (error) throw error;
    return parseStoredActor(accountId, { actor: replies[0]![1] as Record<string, string>, mailbox: replies[1]![1] as (string | null)[] });
  }
}

/** The digest of the credentials whose refusal the snapshot waits on ('' when it does not say). */
function refusedCredentials(snapshot: unknown): string {
  const refused = (snapshot as { context?: { lastError?: { credentials?: unknown } } } | null)?.context?.lastError?.credentials;
  return typeof refused === 'string' ? refused : '';
}

/** The mailbox fields that belong to the actor, in the order `StoredActorFields.mailbox` lists them. */
export const ACTOR_MAILBOX_FIELDS = ['actorVersion', 'actorUpdatedAt', 'runs', 'lastSyncedAt'] as const;

/** What Redis holds about an actor: its snapshot hash, and the mailbox's ACTOR_MAILBOX_FIELDS. */
export interface StoredActorFields {
  actor: Record<string, string>;
  mailbox: (string | null)[];
}

/** The stored actor these fields describe (a compact idle record expanded), or null if none. */
export function parseStoredActor(accountId: string, fields: StoredActorFields): StoredActor | null {
  const [version, updatedAt, runs, lastSyncedAt] = fields.mailbox;
  const raw = fields.actor;
  if (raw.snapshot) {
    let snapshot: unknown;
    try {
      snapshot = JSON.parse(raw.snapshot);
    } catch {
      snapshot = undefined; // reported by validateSnapshot
    }
    return { version: Number(version ?? 0), schema: Number(raw.schema ?? 0), state: raw.state ?? '', updatedAt: Number(updatedAt ?? 0), snapshot };
  }
  if (version == null || runs == null) return null;
  const idle: IdleRecord = { runs: Number(runs), lastSyncedAt: lastSyncedAt == null ? null : Number(lastSyncedAt) };
  return { version: Number(version), schema: SNAPSHOT_SCHEMA, state: 'idle', updatedAt: Number(updatedAt ?? 0), snapshot: idleSnapshot(accountId, idle), compact: true };
}

/**
 * The IdleRecord of a persisted snapshot, or null when the snapshot says more than one: not idle,
 * a child, history, a pending retry or error, or a context field this function does not know (a
 * newer machine): those are stored whole, so the compact form can never lose anything.
 */
export function idleRecordOf(snapshot: unknown): IdleRecord | null {
  const s = snapshot as { status?: unknown; value?: unknown; children?: object; historyValue?: object; context?: Record<string, unknown> } | null;
  if (!s || s.status !== 'active' || s.value !== 'idle') return null;
  if (Object.keys(s.children ?? {}).length || Object.keys(s.historyValue ?? {}).length) return null;
  const { accountId, attempt, retryAt, retryState, lastError, lastSyncedAt, runs, ...unknown } = s.context ?? {};
  if (Object.keys(unknown).length || typeof accountId !== 'string') return null;
  if (attempt !== 0 || retryAt !== null || retryState !== null || lastError !== null) return null;
  if (typeof runs !== 'number' || !(lastSyncedAt === null || typeof lastSyncedAt === 'number')) return null;
  return { runs, lastSyncedAt };
}

/** XState's persisted snapshot of an idle actor with this record (what idleRecordOf was given). */
export function idleSnapshot(accountId: string, idle: IdleRecord): Snapshot<unknown> {
  const resolved = accountMachine.resolveState({ value: 'idle', context: { accountId, attempt: 0, retryAt: null, retryState: null, lastError: null, ...idle } });
  return JSON.parse(JSON.stringify(accountMachine.getPersistedSnapshot(resolved))) as Snapshot<unknown>;
}

/** The invoked child each state must have after a restore, or it would wait forever. */
const CHILD_OF_STATE: Record<string, string | undefined> = {
  idle: undefined,
  fetching: 'listChanges',
  applying: 'applyChanges',
  downloading: 'downloadQueue',
  finishing: 'finishRun',
  backoff: 'waitUntil',
  awaitingRelink: undefined,
};

export type SnapshotCheck = { ok: true; snapshot: Snapshot<unknown> } | { ok: false; reason: string };

/**
 * Decides whether a stored snapshot can be restored without one of XState's silent failures: an
 * unknown state (the actor would error asynchronously), a missing child (it would wait forever), a
 * schema from another version of the machine, an errored snapshot.
 */
export function validateSnapshot(machine: AccountMachine, stored: StoredActor, accountId: string): SnapshotCheck {
  // Probing costs a second actor per restore; an expanded idle record is valid by construction.
  if (stored.compact && (stored.snapshot as { context?: { accountId?: unknown } }).context?.accountId === accountId) return { ok: true, snapshot: stored.snapshot as Snapshot<unknown> };
  if (stored.schema !== SNAPSHOT_SCHEMA) return { ok: false, reason: `snapshot schema ${stored.schema}, this engine reads ${SNAPSHOT_SCHEMA}` };
  const snapshot = stored.snapshot as { status?: unknown; value?: unknown; context?: { accountId?: unknown }; children?: Record<string, { src?: unknown }> } | undefined;
  if (!snapshot || typeof snapshot !== 'object') return { ok: false, reason: 'snapshot is not JSON' };
  if (snapshot.status !== 'active') return { ok: false, reason: `snapshot status is ${String(snapshot.status)}` };
  if (typeof snapshot.value !== 'string' || !(ACCOUNT_STATES as readonly string[]).includes(snapshot.value)) {
    return { ok: false, reason: `unknown state ${JSON.stringify(snapshot.value)}` };
  }
  if (snapshot.context?.accountId !== accountId) return { ok: false, reason: 'snapshot belongs to another account' };
  const child = CHILD_OF_STATE[snapshot.value];
  if (child && snapshot.children?.[child]?.src !== child) return { ok: false, reason: `state ${snapshot.value} lost its ${child} child` };
  try {
    const probe = createActor(machine, { snapshot: snapshot as never, input: { accountId } });
    if (probe.getSnapshot().status !== 'active') return { ok: false, reason: 'XState could not restore the snapshot' };
  } catch (error) {
    return { ok: false, reason: `XState could not restore the snapshot: ${(error as Error).message}` };
  }
  return { ok: true, snapshot: snapshot as Snapshot<unknown> };
}
