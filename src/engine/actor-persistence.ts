import { createActor, type Snapshot } from 'xstate';
import { ACCOUNT_STATES, type AccountMachine } from '../../machines/account.machine.js';
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
}

/** Persisted actor snapshots, written with a version compare-and-set so an older one never wins. */
export class ActorPersistence {
  constructor(private readonly redis: RedisClient, private readonly fenceOf: FenceTokenOf = UNFENCED) {}

  /** The account's fence key and the token this process writes with. */
  private fence(accountId: string): Fence {
    return { key: accountKeys(accountId).fence, token: this.fenceOf(accountId) };
  }

  async save(accountId: string, version: number, snapshot: unknown, state: string, now: number): Promise<boolean> {
    const saved = await runFencedScript<number>(
      this.redis,
      'actorSave',
      this.fence(accountId), [accountKeys(accountId).actor], [version, JSON.stringify(snapshot), SNAPSHOT_SCHEMA, now, state]);
    return saved === 1;
  }

  async load(accountId: string): Promise<StoredActor | null> {
    const raw = await this.redis.hgetall(accountKeys(accountId).actor);
    if (!raw.snapshot) return null;
    let snapshot: unknown;
    try {
      snapshot = JSON.parse(raw.snapshot);
    } catch {
      snapshot = undefined; // reported by validateSnapshot
    }
    return { version: Number(raw.version ?? 0), schema: Number(raw.schema ?? 0), state: raw.state ?? '', updatedAt: Number(raw.updatedAt ?? 0), snapshot };
  }
}

/** The invoked child each state must have after a restore, or it would wait forever. */
const CHILD_OF_STATE: Record<string, string | undefined> = {
  idle: undefined,
  fetching: 'listChanges',
  applying: 'applyChanges',
  downloading: 'downloadQueue',
  finishing: 'finishRun',
  backoff: 'waitUntil',
};

export type SnapshotCheck = { ok: true; snapshot: Snapshot<unknown> } | { ok: false; reason: string };

/**
 * Decides whether a stored snapshot can be restored without one of XState's silent failures: an
 * unknown state (the actor would error asynchronously), a missing child (it would wait forever), a
 * schema from another version of the machine, an errored snapshot.
 */
export function validateSnapshot(machine: AccountMachine, stored: StoredActor, accountId: string): SnapshotCheck {
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
