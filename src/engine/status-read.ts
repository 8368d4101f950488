import { MAILBOX_STATE_FIELDS, mailboxStateOf, type MailboxState } from '../mailbox/mailbox.js';
import { accountKeys } from '../redis/keys.js';
import { hashReplyEntries, runScript, type RedisClient } from '../redis/scripts.js';
import { parseFlatValues, type SetAsideFile } from '../sync/sync-store.js';
import { ACTOR_MAILBOX_FIELDS, parseStoredActor, type StoredActor } from './actor-persistence.js';

/** What Redis holds that an account's status shows (Engine.status builds the status from it). */
export interface StatusRecord {
  box: MailboxState;
  /** Files still queued for download. */
  pending: number;
  stored: StoredActor | null;
  setAside: { count: number; files: SetAsideFile[] };
}

const FIELDS = [...MAILBOX_STATE_FIELDS, ...ACTOR_MAILBOX_FIELDS];

type StatusReply = 0 | [(string | null)[], number, string[], string[]];

/**
 * An account's status record in one round trip (account-status.lua), null when it is not linked.
 * The same reads as Mailbox.read, SyncStore.pendingCount, ActorPersistence.load and the set-aside
 * files' hash, in one consistent view: those were ten commands per account.
 */
export async function readStatusRecord(redis: RedisClient, accountId: string, setAsideLimit: number): Promise<StatusRecord | null> {
  const k = accountKeys(accountId);
  const reply = await runScript<StatusReply>(redis, 'accountStatus', [k.credentials, k.mailbox, k.queue, k.actor, k.setAside], FIELDS);
  if (reply === 0) return null;
  const [fields, pending, actor, setAside] = reply;
  return {
    box: mailboxStateOf(fields.slice(0, MAILBOX_STATE_FIELDS.length)),
    pending,
    stored: parseStoredActor(accountId, { actor: Object.fromEntries(hashReplyEntries(actor)), mailbox: fields.slice(MAILBOX_STATE_FIELDS.length) }),
    setAside: firstSetAside(parseFlatValues<SetAsideFile>(setAside), setAsideLimit),
  };
}

/** The set-aside files (path_lower -> SetAsideFile) as a status shows them: their count, and the first `limit` by path. */
function firstSetAside(files: ReadonlyMap<string, SetAsideFile>, limit: number): { count: number; files: SetAsideFile[] } {
  const sorted = [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { count: files.size, files: sorted.slice(0, limit) };
}
