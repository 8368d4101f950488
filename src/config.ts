import { resolve } from 'node:path';
import { z } from 'zod';
import { InvalidTokenKeyError, parseTokenKey } from './accounts/token-cipher.js';
import { parseClusterNodes } from './redis/connection.js';

/** Invalid configuration: one line that names the variable and says what is expected. */
export class ConfigError extends Error {
  constructor(readonly variable: string, detail: string) {
    super(`invalid configuration: ${variable} ${detail}`);
    this.name = 'ConfigError';
  }
}

/** The longest a Node timer waits: past it Node fires after 1 ms instead (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * The bounds of the engine's sizes and timings, [min, max], for the environment (below) and the
 * library's createEngine alike.
 */
export const SETTING_BOUNDS = {
  downloadConcurrency: [1, 256],
  downloadsPerAccount: [1, 64],
  pageLimit: [1, 2000],
  leaseTtlMs: [300, MAX_TIMER_MS],
  timerMs: [1, MAX_TIMER_MS],
} as const satisfies Record<string, readonly [number, number]>;

/**
 * A whole number from `min` to `max` (decimal digits, spaces around them allowed). Not
 * `z.coerce.number()`: that reads a blank value as 0 (PORT a random port, POLL_INTERVAL_MS the
 * safety net off) and answers "expected number, received NaN" for a typo.
 */
function wholeNumber(min: number, max: number, unit = '') {
  const expected = `expected a whole number${unit} from ${min} to ${max}`;
  return z.string().refine((value) => /^\s*\d+\s*$/.test(value) && Number(value) >= min && Number(value) <= max, expected).transform(Number);
}
const port = wholeNumber(0, 65535);
const count = (max = Number.MAX_SAFE_INTEGER) => wholeNumber(1, max);
/** Milliseconds given to a timer. */
const timerMs = (min = 1) => wholeNumber(min, MAX_TIMER_MS, ' of milliseconds');
const url = z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL');
/**
 * A secret or key compared byte for byte: spaces or a line break around it (a secret made from a
 * file often ends in a newline) would make every request or signature fail with no hint why.
 */
const exact = (schema: z.ZodString) => schema.refine((value) => value === value.trim(), 'has spaces or a line break at its start or end: remove them');

const schema = z.object({
  PORT: port.default(8080),
  HOST: z
    .string()
    .refine((v) => v.trim() !== '', 'expected a host name or address')
    .refine((v) => v === v.trim() && !/^\[.*\]$/.test(v), 'expected a host name or address without spaces or brackets (::1, not [::1])')
    .default('127.0.0.1'),
  REDIS_URL: z.string().url().refine((u) => /^rediss?:\/\//.test(u), 'must be a redis:// or rediss:// URL').optional(),
  /** Redis Cluster seed nodes, `host:port,host:port` (used instead of REDIS_URL; set one or the other). */
  REDIS_CLUSTER_NODES: z.string().optional(),
  DATA_DIR: z.string().refine((v) => v.trim() !== '', 'expected a folder').default('./data'),
  DROPBOX_APP_KEY: exact(z.string().min(1)).optional(),
  DROPBOX_APP_SECRET: exact(z.string().min(1)).optional(),
  DROPBOX_API_URL: url.optional(),
  DROPBOX_CONTENT_URL: url.optional(),
  /** Dropbox's authorize page (default https://www.dropbox.com/oauth2/authorize, or the emulator's). */
  DROPBOX_AUTHORIZE_URL: url.optional(),
  /** The redirect URI registered with the Dropbox app, e.g. https://mailroom.example.com/oauth/callback. */
  OAUTH_REDIRECT_URL: url.optional(),
  /** 32 bytes (base64 or hex) encrypting Dropbox tokens at rest; required in production mode. */
  TOKEN_ENCRYPTION_KEY: z.string().optional(),
  /** `production` makes a missing TOKEN_ENCRYPTION_KEY a start-up error (NODE_ENV=production does too). */
  MAILROOM_ENV: z.enum(['production', 'development', 'test']).optional(),
  NODE_ENV: z.string().optional(),
  ADMIN_TOKEN: exact(z.string().min(16, 'must be at least 16 characters')).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DOWNLOAD_CONCURRENCY: wholeNumber(...SETTING_BOUNDS.downloadConcurrency).default(16),
  ACCOUNT_DOWNLOAD_CONCURRENCY: wholeNumber(...SETTING_BOUNDS.downloadsPerAccount).default(4),
  DROPBOX_TIMEOUT_MS: timerMs().default(30_000),
  REDIS_COMMAND_TIMEOUT_MS: timerMs().default(5_000),
  LIST_PAGE_LIMIT: wholeNumber(...SETTING_BOUNDS.pageLimit).default(2000),
  SWEEP_INTERVAL_MS: timerMs().default(10_000),
  LEASE_TTL_MS: timerMs(SETTING_BOUNDS.leaseTtlMs[0]).default(15_000),
  IDLE_TIMEOUT_MS: timerMs().default(60_000),
  MAX_ACTIVE_RUNS: count().default(64),
  /** Compared with the time since the last listing, never a timer. */
  POLL_INTERVAL_MS: wholeNumber(0, Number.MAX_SAFE_INTEGER, ' of milliseconds').default(15 * 60_000),
  MAX_POLLS_PER_SWEEP: count().default(100),
  /** Compared with the time since the last try, never a timer. */
  PARKED_RECHECK_MS: wholeNumber(0, Number.MAX_SAFE_INTEGER, ' of milliseconds').default(60 * 60_000),
  /** `1` inspects every account actor through the Stately WebSocket inspector (off by default). */
  INSPECT: z.enum(['0', '1', 'true', 'false']).default('0'),
  /** Port of the inspector's relay (HTTP page + WebSocket), on loopback. */
  INSPECT_PORT: port.default(5678),
});

export interface Config {
  port: number;
  host: string;
  redisUrl: string | undefined;
  redisClusterNodes: { host: string; port: number }[] | undefined;
  dataDir: string;
  dropboxAppKey: string | undefined;
  dropboxAppSecret: string | undefined;
  dropboxApiUrl: string | undefined;
  dropboxContentUrl: string | undefined;
  dropboxAuthorizeUrl: string | undefined;
  oauthRedirectUrl: string | undefined;
  /** MAILROOM_ENV=production, or NODE_ENV=production when MAILROOM_ENV is unset. */
  production: boolean;
  tokenEncryptionKey: Buffer | undefined;
  adminToken: string | undefined;
  logLevel: string;
  downloadConcurrency: number;
  accountDownloadConcurrency: number;
  dropboxTimeoutMs: number;
  redisCommandTimeoutMs: number;
  listPageLimit: number;
  sweepIntervalMs: number;
  leaseTtlMs: number;
  idleTimeoutMs: number;
  maxActiveRuns: number;
  pollIntervalMs: number;
  maxPollsPerSweep: number;
  parkedRecheckMs: number;
  inspect: boolean;
  inspectPort: number;
}

/** Variables whose value is a secret: a refusal names them and says what is expected, never the value. */
const SECRET_VARIABLES = new Set(['ADMIN_TOKEN', 'DROPBOX_APP_SECRET', 'TOKEN_ENCRYPTION_KEY']);

/**
 * A refused value as the error line shows it: quoted, except a secret's (only its length) and the
 * password of a URL's user info (`redis://user:password@host`), which are never printed: the line
 * goes to stderr, and from there to the same log store as everything else.
 */
function shown(variable: string, value: string | undefined): string {
  if (value === undefined) return '(unset)';
  if (SECRET_VARIABLES.has(variable)) return `(${value.length} characters, not shown)`;
  return `= ${JSON.stringify(value.replace(/(\/\/[^/@\s]*?:)[^@\s]*@/g, '$1***@'))}`;
}

/** Reads the environment; empty strings count as unset. Throws ConfigError on the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned = Object.fromEntries(Object.keys(schema.shape).map((key) => [key, env[key] === '' ? undefined : env[key]]));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0]);
    throw new ConfigError(variable, `${shown(variable, cleaned[variable])}: ${issue.message}`);
  }
  const c = parsed.data;
  let redisClusterNodes: { host: string; port: number }[] | undefined;
  if (c.REDIS_CLUSTER_NODES !== undefined) {
    if (c.REDIS_URL !== undefined) throw new ConfigError('REDIS_CLUSTER_NODES', 'and REDIS_URL are both set: set one or the other');
    try {
      redisClusterNodes = parseClusterNodes(c.REDIS_CLUSTER_NODES);
    } catch (error) {
      throw new ConfigError('REDIS_CLUSTER_NODES', `${shown('REDIS_CLUSTER_NODES', c.REDIS_CLUSTER_NODES)}: ${(error as Error).message} (expected host:port,host:port)`);
    }
  }
  // Without the app secret the local demo runs on its built-in emulator (src/main.ts): a Dropbox
  // host set for it would be ignored, the process syncing the demo folder instead of that server.
  if (c.DROPBOX_APP_SECRET === undefined) {
    for (const variable of ['DROPBOX_API_URL', 'DROPBOX_CONTENT_URL'] as const) {
      if (c[variable] !== undefined) throw new ConfigError(variable, 'is set but DROPBOX_APP_SECRET is not: without it the local demo runs on its built-in emulator and the URL is not used; set DROPBOX_APP_SECRET (webhooks are verified with it), or unset the URL for the demo');
    }
  }
  const production = (c.MAILROOM_ENV ?? c.NODE_ENV) === 'production';
  let tokenEncryptionKey: Buffer | undefined;
  if (c.TOKEN_ENCRYPTION_KEY !== undefined) {
    try {
      tokenEncryptionKey = parseTokenKey(c.TOKEN_ENCRYPTION_KEY);
    } catch (error) {
      if (error instanceof InvalidTokenKeyError) throw new ConfigError('TOKEN_ENCRYPTION_KEY', error.detail);
      throw error;
    }
  } else if (production) {
    throw new ConfigError('TOKEN_ENCRYPTION_KEY', 'is required in production mode (MAILROOM_ENV or NODE_ENV is production): Dropbox tokens are encrypted at rest with it; generate one with: openssl rand -base64 32');
  }
  // Generated, the token would have to be printed at start, into the logs of a production service.
  if (production && c.ADMIN_TOKEN === undefined) {
    throw new ConfigError('ADMIN_TOKEN', 'is required in production mode (MAILROOM_ENV or NODE_ENV is production): the account API\'s bearer token, at least 16 characters; generate one with: openssl rand -base64 24');
  }
  return {
    port: c.PORT,
    host: c.HOST,
    redisUrl: c.REDIS_URL,
    redisClusterNodes,
    dataDir: resolve(c.DATA_DIR),
    dropboxAppKey: c.DROPBOX_APP_KEY,
    dropboxAppSecret: c.DROPBOX_APP_SECRET,
    dropboxApiUrl: c.DROPBOX_API_URL,
    // As the library's `contentUrl`: a server standing in for the API (an emulator, a compatible
    // server) serves the downloads too unless told otherwise, never the real content host.
    dropboxContentUrl: c.DROPBOX_CONTENT_URL ?? c.DROPBOX_API_URL,
    dropboxAuthorizeUrl: c.DROPBOX_AUTHORIZE_URL,
    oauthRedirectUrl: c.OAUTH_REDIRECT_URL,
    production,
    tokenEncryptionKey,
    adminToken: c.ADMIN_TOKEN,
    logLevel: c.LOG_LEVEL,
    downloadConcurrency: c.DOWNLOAD_CONCURRENCY,
    accountDownloadConcurrency: c.ACCOUNT_DOWNLOAD_CONCURRENCY,
    dropboxTimeoutMs: c.DROPBOX_TIMEOUT_MS,
    redisCommandTimeoutMs: c.REDIS_COMMAND_TIMEOUT_MS,
    listPageLimit: c.LIST_PAGE_LIMIT,
    sweepIntervalMs: c.SWEEP_INTERVAL_MS,
    leaseTtlMs: c.LEASE_TTL_MS,
    idleTimeoutMs: c.IDLE_TIMEOUT_MS,
    maxActiveRuns: c.MAX_ACTIVE_RUNS,
    pollIntervalMs: c.POLL_INTERVAL_MS,
    maxPollsPerSweep: c.MAX_POLLS_PER_SWEEP,
    parkedRecheckMs: c.PARKED_RECHECK_MS,
    inspect: c.INSPECT === '1' || c.INSPECT === 'true',
    inspectPort: c.INSPECT_PORT,
  };
}
