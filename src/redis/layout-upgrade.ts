import { TokenCipher } from '../accounts/token-cipher.js';
import type { Logger } from '../logger.js';
import { accountKeys, oldLayoutKeys } from './keys.js';
import { runScript, type RedisClient } from './scripts.js';

/** Accounts checked at once (one auto-pipelined batch of EXISTS). */
const CHECK_BATCH = 500;
/** Conversions of one account retried when a link changed its credentials in between (each is a compare-and-set). */
const MAX_ATTEMPTS = 5;

/** An account that could not be converted; the message says which and what to do. */
export class LayoutUpgradeError extends Error {
  constructor(readonly accountId: string, detail: string) {
    super(`could not convert account ${accountId} from the old Redis layout: ${detail}. Nothing of it was lost (each account converts in one step, or not at all); start the engine again to retry`);
    this.name = 'LayoutUpgradeError';
  }
}

/**
 * Converts linked accounts stored in the old layout (an account hash and a listing hash: keys.ts,
 * oldLayoutKeys) to the current one, each in one atomic step (layout-upgrade.lua). Idempotent and
 * safe to run from several processes at once: an account already converted is left alone.
 * Returns how many accounts it converted.
 *
 * It runs in JavaScript first because credentials sealed as a `v1:` text envelope become bytes
 * here (TokenCipher.textEnvelopeToBytes; Redis's Lua has no base64), without the key: a process
 * started without TOKEN_ENCRYPTION_KEY, or with another key, converts them as well. Plaintext
 * credentials stay plaintext (a link with a key set encrypts them, as before), and a value that
 * is not a well-formed envelope is kept as it is, for the reader to report.
 *
 * `accountIds` are valid ids: AccountStore.linkedIds leaves out (and reports) a member of the set
 * that is none. Accounts unlinked before the upgrade are not in the set of linked ids; they keep
 * their old listing hash until a re-link converts it (account-link.lua).
 */
export async function upgradeOldLayout(redis: RedisClient, accountIds: readonly string[], log?: Logger): Promise<number> {
  let converted = 0;
  for (let i = 0; i < accountIds.length; i += CHECK_BATCH) {
    const batch = accountIds.slice(i, i + CHECK_BATCH);
    const old = await Promise.all(batch.map(async (accountId) => {
      const keys = oldLayoutKeys(accountId);
      return (await redis.exists(keys.account, keys.listing)) > 0;
    }));
    const results = await Promise.all(batch.filter((_, j) => old[j]).map((accountId) => upgradeAccount(redis, accountId)));
    converted += results.filter(Boolean).length;
  }
  if (converted > 0) log?.info({ converted }, 'converted accounts from the old Redis layout (account and listing hashes) to mailbox, creds and cursor');
  return converted;
}

/** One account; true when this call converted it, false when it was done already. */
async function upgradeAccount(redis: RedisClient, accountId: string): Promise<boolean> {
  const old = oldLayoutKeys(accountId);
  const k = accountKeys(accountId);
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const credentials = await redis.hgetBuffer(old.account, 'credentials');
    const result = await runScript<number>(redis, 'layoutUpgrade', [old.account, old.listing, k.mailbox, k.credentials, k.cursor, k.pageCursor], [
      credentials ?? '',
      credentials ? storedForm(credentials) : '',
    ]).catch((error: unknown) => {
      throw new LayoutUpgradeError(accountId, (error as Error).message);
    });
    if (result !== -1) return result === 1;
  }
  throw new LayoutUpgradeError(accountId, `its credentials changed ${MAX_ATTEMPTS} times while it was being converted (is a process of the old version still running? stop it first)`);
}

/** The old layout's credentials as the current one stores them: a text envelope as bytes, anything else as it is. */
function storedForm(credentials: Buffer): Buffer {
  if (!TokenCipher.isEnvelope(credentials)) return credentials;
  return TokenCipher.textEnvelopeToBytes(credentials.toString('utf8')) ?? credentials;
}
