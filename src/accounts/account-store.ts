import { createHash } from 'node:crypto';
import { z } from 'zod';
import { accountKeys, isValidAccountId, LINKED_ACCOUNTS_KEY, oldLayoutKeys } from '../redis/keys.js';
import { runScript, runScriptForBytes, type RedisClient } from '../redis/scripts.js';
import type { DropboxCredentials } from '../dropbox/dropbox-session.js';
import type { Logger } from '../logger.js';
import { TOKEN_KEY_VARIABLE, TokenCipher, TokenDecryptError } from './token-cipher.js';

/** SSCAN's COUNT when every linked id is wanted: about 1,000 ids per command, each well under a millisecond of Redis. */
const WHOLE_WALK_PAGE = 1_000;

/** The fields of a link's credentials, for schemas that take them beside other fields. */
export const credentialFields = {
  accessToken: z.string().min(1).max(4096).optional(),
  refreshToken: z.string().min(1).max(4096).optional(),
};

export const hasCredential = (c: { accessToken?: string; refreshToken?: string }): boolean => Boolean(c.accessToken || c.refreshToken);
export const NO_CREDENTIAL = { message: 'give accessToken or refreshToken' };

/**
 * The library's DropboxCredentials. Strict: a key it does not know (`access_token`, a typo) is
 * refused by name rather than dropped, so a caller learns of the mistake instead of linking with
 * less than it sent.
 */
export const credentialsSchema = z
  .strictObject({ ...credentialFields, accessTokenExpiresAt: z.number().int().nonnegative().optional() })
  .refine(hasCredential, NO_CREDENTIAL);

export interface LinkedAccount {
  accountId: string;
  /** Decrypted on first read: throws TokenDecryptError when TOKEN_ENCRYPTION_KEY cannot open them. */
  readonly credentials: DropboxCredentials;
  /**
   * Names the stored credentials (credentialsDigest of their bytes): a refusal recorded with the
   * digest of credentials a re-link has since replaced is not a reason to wait for a re-link.
   */
  readonly credentialsDigest: string;
  ignore: string[];
  linkedAt: number;
}

/**
 * The first 16 hex digits of the SHA-1 of the stored credential bytes, as actor-save.lua computes
 * it (`redis.sha1hex`). A sealed envelope has a fresh IV, so every link gives a new digest.
 */
export function credentialsDigest(stored: Buffer | string): string {
  return createHash('sha1').update(stored).digest('hex').slice(0, 16);
}

/**
 * An account's link as Redis holds it, read by `AccountStore.get` or, when an actor starts, by the
 * lease grant in the same step. `credentials` are the stored bytes: a binary token envelope, an old
 * text envelope, or plaintext JSON.
 */
export interface StoredLink {
  credentials: Buffer;
  ignore: string | null;
  linkedAt: string | null;
}

/** A script's reply with the link's three values (nil when absent), read as bytes: see StoredLink. */
export type StoredLinkReply = [Buffer | null, Buffer | null, Buffer | null];

export interface AccountStoreOptions {
  /** Encrypts credentials at rest; without it they are stored as plaintext JSON (dev/demo only). */
  cipher?: TokenCipher;
  /** Receives the one-time plaintext warning. */
  log?: Logger;
}

/**
 * Linked accounts: credentials and settings, plus the global set of linked ids. Credentials are
 * written encrypted when a cipher is given (bound to the account id); plaintext values written
 * before a key was set stay readable and are encrypted on the next link.
 */
export class AccountStore {
  private warnedPlaintext = false;
  private readonly reportedInvalid = new Set<string>();

  constructor(private readonly redis: RedisClient, private readonly options: AccountStoreOptions = {}) {}

  /** Links (or re-links) and asks for a sync; true when the actor must be woken. */
  async link(accountId: string, credentials: DropboxCredentials, ignore: string[], now: number): Promise<boolean> {
    const k = accountKeys(accountId);
    // In the set before and after: the sweep, the poll and boot find accounts through it, so an
    // account linked (mailbox running) but not in it would never be woken again. Before, for a crash
    // (or a lost write) between the two steps; after, for an unlink that ran its SREM in between. A
    // member that is not linked is harmless: its mailbox reads idle.
    await this.redis.sadd(LINKED_ACCOUNTS_KEY, accountId);
    const wake = await runScript<number>(this.redis, 'accountLink', [k.credentials, k.mailbox, oldLayoutKeys(accountId).listing, k.cursor, k.pageCursor], [this.seal(accountId, credentials), now, JSON.stringify(ignore)]);
    await this.redis.sadd(LINKED_ACCOUNTS_KEY, accountId);
    return wake === 1;
  }

  /** Unlinks; false when it was not linked. Files, index and entries stay. */
  async unlink(accountId: string): Promise<boolean> {
    const k = accountKeys(accountId);
    const existed = await runScript<number>(this.redis, 'accountUnlink', [k.credentials, k.mailbox, k.actor, k.lease]);
    await this.redis.srem(LINKED_ACCOUNTS_KEY, accountId);
    // A re-link from another process may have landed whole between the script and the SREM: its
    // own SADD came before ours, so the account is linked but out of the set. Checked after the
    // SREM, so a re-link landing later is seen either here or by its own last SADD.
    if (await this.redis.exists(k.credentials)) await this.redis.sadd(LINKED_ACCOUNTS_KEY, accountId);
    return existed === 1;
  }

  async get(accountId: string): Promise<LinkedAccount | null> {
    const k = accountKeys(accountId);
    return this.fromStored(accountId, parseStoredLink(await runScriptForBytes<StoredLinkReply>(this.redis, 'accountRead', [k.credentials, k.mailbox])));
  }

  /** The linked account a stored link describes (read elsewhere, e.g. by the lease grant), or null when not linked. */
  fromStored(accountId: string, stored: StoredLink | null): LinkedAccount | null {
    if (!stored) return null;
    let credentials: DropboxCredentials | undefined;
    let digest: string | undefined;
    const open = () => (credentials ??= this.open(accountId, stored.credentials));
    return {
      accountId,
      get credentials() {
        return open();
      },
      // Only a refusal needs it: not hashed for every actor start and status read.
      get credentialsDigest() {
        return (digest ??= credentialsDigest(stored.credentials));
      },
      ignore: stored.ignore ? (JSON.parse(stored.ignore) as string[]) : [],
      linkedAt: Number(stored.linkedAt ?? 0),
    };
  }

  /** With a cipher, a binary envelope of the credentials packed small (sealedPlaintext); without one, their JSON. */
  private seal(accountId: string, credentials: DropboxCredentials): Buffer | string {
    if (this.options.cipher) return this.options.cipher.seal(sealedPlaintext(credentials), accountId);
    if (!this.warnedPlaintext) {
      this.warnedPlaintext = true;
      this.options.log?.warn(`${TOKEN_KEY_VARIABLE} is not set: Dropbox tokens are stored in Redis as plaintext (set it in production)`);
    }
    return JSON.stringify(credentials);
  }

  private open(accountId: string, stored: Buffer): DropboxCredentials {
    if (!TokenCipher.isEnvelope(stored)) return JSON.parse(stored.toString('utf8')) as DropboxCredentials;
    const what = `the credentials of account ${accountId}`;
    if (!this.options.cipher) throw new TokenDecryptError(`${what} are encrypted but ${TOKEN_KEY_VARIABLE} is not set`);
    return credentialsFromPlaintext(this.options.cipher.decrypt(stored, accountId, what));
  }

  /**
   * The linked account ids. A member of the set that is no account id (written by hand, or by a
   * tool gone wrong) has no keys: it is reported once and left out, so that the sweep, the boot
   * pass and the layout upgrade, which go through every id, still reach every real account.
   *
   * Read a page at a time (SSCAN), not with one SMEMBERS: at 100,000 accounts that one command held
   * Redis 30 to 116 ms (measured in several sessions), every other client's commands (webhooks
   * included) waiting behind it, at each boot of each process. Every account linked throughout
   * the walk comes exactly once (SSCAN may give one twice: the Set keeps one); one linked or
   * unlinked during it may or may not, as it would have a moment earlier or later.
   */
  async linkedIds(): Promise<string[]> {
    const ids = new Set<string>();
    for await (const page of this.linkedIdPages(WHOLE_WALK_PAGE)) for (const id of page) ids.add(id);
    return [...ids].sort();
  }

  /**
   * The linked account ids a page at a time (SSCAN, about `pageSize` per page, in no order), for
   * what walks every account periodically: one SMEMBERS of 100,000 ids blocked Redis for 86 to
   * 116 ms (every other client waits meanwhile) and held all of them in the process. An id may come
   * twice when the set grows or shrinks during the walk (SSCAN's guarantee is every member present
   * throughout, at least once).
   */
  async *linkedIdPages(pageSize = 500): AsyncGenerator<string[]> {
    let cursor: string | null = '0';
    do {
      const page: { ids: string[]; next: string | null } = await this.linkedIdPage(cursor, pageSize);
      if (page.ids.length > 0) yield page.ids;
      cursor = page.next;
    } while (cursor !== null);
  }

  /**
   * One page of linked account ids from `cursor` ('0' to start): about `count` of them (SSCAN's
   * COUNT is a hint, and a set of up to 128 small members comes whole), sorted, and the cursor of
   * the next page, null after the last. For a caller that pages across requests (GET /accounts);
   * the same guarantees as linkedIdPages.
   */
  async linkedIdPage(cursor: string, count: number): Promise<{ ids: string[]; next: string | null }> {
    const ids: string[] = [];
    let at = cursor;
    do {
      const [next, members] = await this.redis.sscan(LINKED_ACCOUNTS_KEY, at, 'COUNT', count);
      at = next;
      ids.push(...this.validIds(members));
    } while (at !== '0' && ids.length < count);
    return { ids: ids.sort(), next: at === '0' ? null : at };
  }

  /**
   * How many members the set of linked accounts holds (one SCARD: constant time, whatever the
   * count), for what shows a total without walking every id. A member that is no account id (see
   * linkedIds) counts too: the set holds none unless written by hand.
   */
  async linkedCount(): Promise<number> {
    return this.redis.scard(LINKED_ACCOUNTS_KEY);
  }

  private validIds(members: readonly string[]): string[] {
    const ids: string[] = [];
    for (const member of members) {
      if (isValidAccountId(member)) ids.push(member);
      else if (!this.reportedInvalid.has(member)) {
        this.reportedInvalid.add(member);
        this.options.log?.warn({ member: member.slice(0, 140), set: LINKED_ACCOUNTS_KEY }, 'the set of linked accounts holds something that is no account id: left out (remove it with SREM)');
      }
    }
    return ids;
  }
}

/** A script's link reply as a StoredLink; null when the account is not linked (no credentials). */
export function parseStoredLink([credentials, ignore, linkedAt]: StoredLinkReply): StoredLink | null {
  if (!credentials || credentials.length === 0) return null;
  return { credentials, ignore: ignore?.toString('utf8') ?? null, linkedAt: linkedAt?.toString('utf8') ?? null };
}

/**
 * What is sealed: the credentials as a positional JSON array, `[accessToken, refreshToken,
 * accessTokenExpiresAt]` (null for a missing one, trailing nulls left out). The object's field names
 * cost 60 bytes, and with the expiry an OAuth link stores, that pushed a production credential
 * (a 150-character access token, a 64-character refresh token) into the next allocation size of
 * Redis: 64 bytes more per account (docs/benchmarks.md, figure 7).
 */
export function sealedPlaintext(credentials: DropboxCredentials): string {
  const fields: (string | number | null)[] = [credentials.accessToken ?? null, credentials.refreshToken ?? null, credentials.accessTokenExpiresAt ?? null];
  while (fields.length > 0 && fields.at(-1) === null) fields.pop();
  return JSON.stringify(fields);
}

/** Reads what was sealed: the positional array, or the JSON object that text envelopes hold. */
function credentialsFromPlaintext(plaintext: string): DropboxCredentials {
  const parsed = JSON.parse(plaintext) as DropboxCredentials | [string | null, string | null, number | null];
  if (!Array.isArray(parsed)) return parsed;
  const [accessToken, refreshToken, accessTokenExpiresAt] = parsed;
  return { ...(accessToken ? { accessToken } : {}), ...(refreshToken ? { refreshToken } : {}), ...(accessTokenExpiresAt ? { accessTokenExpiresAt } : {}) };
}
