/**
 * Every key of one account shares the hash tag `{<accountId>}`, so each Lua script touches a single
 * Redis Cluster slot. Global structures (the set of linked accounts) live outside any account's tag
 * and are only ever written in their own single-key commands.
 */
export type AccountKeys = ReturnType<typeof accountKeys>;

const ACCOUNT_ID = /^[A-Za-z0-9:_.\-]{1,128}$/;
/** `.` and `..` name folders of their own: an account's mirror folder (sync-deps.ts) would leave `mirrors/`. */
const ONLY_DOTS = /^\.+$/;

/** What a valid account id is, as the errors say it. */
export const ACCOUNT_ID_RULE = '1-128 characters of A-Z a-z 0-9 : _ . -, not only dots';

export class InvalidAccountIdError extends Error {
  constructor(readonly accountId: string) {
    super(`invalid account id ${JSON.stringify(accountId.slice(0, 140))}: expected ${ACCOUNT_ID_RULE}`);
    this.name = 'InvalidAccountIdError';
  }
}

export function isValidAccountId(accountId: string): boolean {
  return ACCOUNT_ID.test(accountId) && !ONLY_DOTS.test(accountId);
}

export function accountKeys(accountId: string) {
  if (!isValidAccountId(accountId)) throw new InvalidAccountIdError(accountId);
  const tag = `mr:{${accountId}}`;
  return {
    /**
     * STRING: the Dropbox credentials, as `AccountStore` seals them (bytes: see TokenCipher) or as
     * plaintext JSON without TOKEN_ENCRYPTION_KEY. Exists iff the account is linked. A key of its
     * own, not a hash field: a hash with a value over 64 bytes (`hash-max-listpack-value`) is
     * stored as a hashtable, about 300 bytes more.
     */
    credentials: `${tag}:creds`,
    /**
     * HASH: every small field of the account, in one listpack (an idle account is this hash, the
     * credentials and the cursor: about 1 KiB with production credentials; every key costs ~100
     * bytes of Redis overhead on its own, and a value over 64 bytes would make this a hashtable):
     * - the mailbox: `dirty` (0/1), `status` (idle/running), `webhooks` (count), `listedAt`;
     * - the fencing token, `fence`;
     * - an idle actor's compact state: `actorVersion`, `actorUpdatedAt`, `runs`, `lastSyncedAt`;
     * - the link's settings: `ignore` (JSON patterns; absent when none), `linkedAt`;
     * - the listing's state: `mode` ('full' while a full listing is due or under way; absent:
     *   continue from the cursor), `resync` ('1' when a full re-list was asked for), `ignoreRules`
     *   (the ignore patterns the index was built with, as JSON; absent before the first commit),
     *   `moves` (how far the apply of the page not yet committed has got with its moves,
     *   'staging <page id>' or 'placed <page id>': absent between runs).
     */
    mailbox: `${tag}:mailbox`,
    /** STRING "<owner>|<token>" with a TTL: which process runs this account's actor. */
    lease: `${tag}:lease`,
    /**
     * The hash whose `fence` field is the fencing token (a new one on every lease grant, lua/lib/next-fence.lua): the
     * mailbox, so the token needs no key of its own.
     */
    fence: `${tag}:mailbox`,
    /**
     * HASH: the persisted snapshot of an actor that is not idle: `snapshot`, `schema`, `state` (its
     * version and time are the mailbox's `actorVersion` and `actorUpdatedAt`). Absent while the actor is idle:
     * then the mailbox's compact fields are all there is to restore.
     */
    actor: `${tag}:actor`,
    /**
     * STRING: the committed listing cursor (what the next list_folder/continue starts from), as
     * src/sync/stored-cursor.ts keeps it: a base64url cursor as its bytes, anything else as text.
     */
    cursor: `${tag}:cursor`,
    /** STRING: the cursor of the last page listed and not yet applied, kept the same way; absent between runs. */
    pageCursor: `${tag}:page-cursor`,
    /** LIST of listed entries (JSON, Dropbox's order) not yet applied. */
    changes: `${tag}:changes`,
    /**
     * STRING: the ignore patterns (JSON) the apply of the page not yet committed planned with, from
     * when it begins its moves until the commit (apply-moves.lua): its replay must plan the same
     * moves, whatever a re-link meanwhile did to the account's `ignore`. Absent between runs.
     */
    applyRules: `${tag}:apply-rules`,
    /** HASH path_lower -> JSON of a queued download. */
    queue: `${tag}:queue`,
    /** HASH path_lower -> JSON of what is on disk (id, rev, content hash, display path, kind). */
    files: `${tag}:files`,
    /** HASH path_lower -> JSON of a listed file that the ignore rules keep off disk (to un-ignore it later). */
    ignored: `${tag}:ignored`,
    /**
     * HASH path_lower -> JSON { path, rev, kind, message, at }: queued files that no retry could
     * write while their path stays as it is, set aside so the rest of the account syncs (shown by
     * the account's status). Absent while there are none.
     */
    setAside: `${tag}:set-aside`,
    /** HASH Dropbox file id -> path_lower, to recognise a move by its id. */
    fileIds: `${tag}:file-ids`,
    /** HASH path_lower -> entry id. */
    entryIds: `${tag}:entry-ids`,
    /** HASH entry id -> entry JSON. */
    entries: `${tag}:entries`,
  };
}

/** SET of linked account ids (global; written with single-key commands only). */
export const LINKED_ACCOUNTS_KEY = 'mr:accounts';

/** STRING with a TTL: the owner id of the process whose turn it is to sweep (Engine.scheduledSweep; global). */
export const SWEEP_TURN_KEY = 'mr:sweep-turn';

/** STRING with a TTL: written by `/readyz` to learn whether Redis takes writes (health-routes.ts; global). */
export const READY_PROBE_KEY = 'mr:ready-probe';

/**
 * The two hashes of the layout before `creds`, `cursor` and `page-cursor` (Mailroom up to the
 * change that made an idle account three keys). Read only to convert an account from it: see
 * layout-upgrade.ts.
 * - `account` HASH: `credentials` (plaintext JSON, or a `v1:` text envelope), `ignore`, `linkedAt`;
 *   it existed iff the account was linked.
 * - `listing` HASH: `cursor`, `pageCursor`, `mode` (continue/full), `resync`, `ignoreRules`.
 */
export function oldLayoutKeys(accountId: string) {
  if (!isValidAccountId(accountId)) throw new InvalidAccountIdError(accountId);
  const tag = `mr:{${accountId}}`;
  return { account: `${tag}:account`, listing: `${tag}:listing` };
}

/**
 * STRING with a TTL: a one-time start link's ticket, spent by `POST /oauth/continue`
 * (src/oauth/start-tickets.ts), named by the ticket's SHA-256 so that the key, a dump or MONITOR
 * never shows a ticket that still works. Global; single-key commands only.
 */
export function oauthStartTicketKey(ticketHash: string): string {
  return `mr:oauth:start-ticket:${ticketHash}`;
}

/**
 * STRING with a TTL: a one-time ticket that opens one status page stream (`GET /events`), named by
 * the ticket's SHA-256 as the OAuth start tickets are. Global; single-key commands only.
 */
export function statusTicketKey(ticketHash: string): string {
  return `mr:status:ticket:${ticketHash}`;
}
