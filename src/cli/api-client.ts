import { z } from 'zod';
import { ApiError, UnreachableError } from './errors.js';

import type { AccountStatus } from '../engine/engine.js';

/** What `GET /accounts/:id` answers (docs/contract.md): the engine's own status shape. */
export type { AccountStatus };

export interface Entry {
  id: string;
  path: string;
  title: string;
  html: string;
  created: number;
  updated: number;
}

/** What `POST /oauth/start` answers: a one-time link for a browser to start the OAuth flow. */
export interface StartLink {
  url: string;
  expiresInMs: number;
}

export interface LinkBody {
  accessToken?: string;
  refreshToken?: string;
  ignore?: string[];
}

/**
 * The shapes the CLI reads from the server's answers (docs/contract.md): checked, so a 2xx from
 * something else (another service at --url, a proxy's own page) is reported as such, instead of a
 * TypeError deep in the formatting or a success that never happened. Extra fields pass.
 */
const statusShape = z.looseObject({
  accountId: z.string(),
  state: z.string(),
  dirty: z.boolean(),
  pending: z.number(),
  folder: z.string(),
  lastSyncedAt: z.string().nullable(),
  lastError: z.looseObject({ kind: z.string(), message: z.string(), at: z.string() }).nullable(),
  // Absent from servers older than set-aside files.
  setAside: z.number().optional(),
  setAsideFiles: z.array(z.looseObject({ path: z.string(), kind: z.string(), message: z.string(), at: z.string() })).optional(),
});
const entryShape = z.looseObject({ id: z.string(), path: z.string(), title: z.string(), html: z.string(), created: z.number(), updated: z.number() });
const SHAPES = {
  status: statusShape,
  // `next`: absent from servers older than paging, which list every account at once.
  accounts: z.looseObject({ accounts: z.array(statusShape), next: z.string().nullable().optional() }),
  entries: z.looseObject({ entries: z.array(entryShape), next: z.string().nullable().optional() }),
  startLink: z.looseObject({ url: z.string(), expiresInMs: z.number() }),
  any: z.unknown(),
} as const;

/** The server's largest page: the fewest requests for a long listing. */
const PAGE_LIMIT = 1000;

/** The account API of a running server, with errors mapped to the CLI's exit codes. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly options: { timeoutMs?: number; fetch?: typeof fetch; pageLimit?: number } = {},
  ) {}

  /**
   * Every linked account, or those in `state` (e.g. awaitingRelink), following the server's pages.
   * An account linked or unlinked during the walk may come twice (Redis's SSCAN): kept once.
   */
  async listAccounts(state?: string): Promise<{ accounts: AccountStatus[] }> {
    const pages = await this.allPages<AccountStatus>('/accounts', 'accounts', state === undefined ? {} : { state });
    return { accounts: [...new Map(pages.map((account) => [account.accountId, account])).values()] };
  }

  /**
   * The account's status, or null when the server says it is not linked (404 `not_linked`). Any
   * other 404 (a proxy's, a URL without Mailroom behind it) is an error: taken for "not linked", it
   * would send the operator to re-link an account that is fine.
   */
  async status(accountId: string): Promise<AccountStatus | null> {
    try {
      return await this.request<AccountStatus>('GET', this.accountPath(accountId), { shape: 'status' });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && error.code === 'not_linked') return null;
      throw error;
    }
  }

  link(accountId: string, body: LinkBody): Promise<AccountStatus> {
    return this.request('PUT', this.accountPath(accountId), { body, shape: 'status' });
  }

  /** A one-time start link (POST /oauth/start): the admin token stays out of the URL a browser opens. */
  startLink(): Promise<StartLink> {
    return this.request('POST', '/oauth/start', { shape: 'startLink' });
  }

  async unlink(accountId: string): Promise<void> {
    await this.request('DELETE', this.accountPath(accountId), { status: 204 });
  }

  resync(accountId: string): Promise<{ accountId: string; resync: string }> {
    return this.request('POST', `${this.accountPath(accountId)}/resync`, { status: 202 });
  }

  /** The account's entries, sorted by path, following the server's pages (an entry that comes twice is kept once). */
  async entries(accountId: string): Promise<{ entries: Entry[] }> {
    const pages = await this.allPages<Entry>(`${this.accountPath(accountId)}/entries`, 'entries');
    const entries = [...new Map(pages.map((entry) => [entry.id, entry])).values()];
    return { entries: entries.sort((a, b) => byLowerCase(a.path, b.path)) };
  }

  /**
   * Every item of a paged listing (`{ [key]: [...], next }`), following `next` until it is null. A
   * server from before paging answers no `next`: its one answer is the whole listing. A cursor seen
   * twice would loop forever: refused as not what a Mailroom server answers.
   */
  private async allPages<T>(path: string, key: 'accounts' | 'entries', query: Record<string, string> = {}): Promise<T[]> {
    const items: T[] = [];
    const seen = new Set<string>();
    let cursor: string | null = '0';
    while (cursor !== null) {
      if (seen.has(cursor)) throw new ApiError(200, 'unexpected_answer', `GET ${path}: ${this.baseUrl} sent the page cursor ${cursor} twice; is it a Mailroom server?`);
      seen.add(cursor);
      const search = new URLSearchParams({ ...query, cursor, limit: String(this.options.pageLimit ?? PAGE_LIMIT) });
      const page: Record<string, unknown> & { next?: string | null } = await this.request('GET', `${path}?${search}`, { shape: key });
      items.push(...(page[key] as T[]));
      cursor = page.next ?? null;
    }
    return items;
  }

  private accountPath(accountId: string): string {
    return `/accounts/${encodeURIComponent(accountId)}`;
  }

  /** `shape`: what a 2xx answer must hold; `status`: the one 2xx status the route answers (its body is not read). */
  private async request<T>(method: string, path: string, expect: { body?: unknown; shape?: keyof typeof SHAPES; status?: number } = {}): Promise<T> {
    const { body } = expect;
    const doFetch = this.options.fetch ?? fetch;
    let response: Response;
    try {
      response = await doFetch(this.baseUrl + path, {
        method,
        headers: { Authorization: `Bearer ${this.token}`, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
      });
    } catch (error) {
      throw new UnreachableError(`cannot reach the Mailroom server at ${this.baseUrl} (${describeNetworkError(error)}). Is it running? Point --url or MAILROOM_URL at it.`);
    }
    const text = await response.text().catch(() => '');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (response.ok) {
      if (expect.status !== undefined) {
        if (response.status === expect.status) return json as T;
        throw new ApiError(response.status, 'unexpected_answer', `${method} ${path}: ${this.baseUrl} answered ${response.status}, where a Mailroom server answers ${expect.status}; is it a Mailroom server?`);
      }
      if (json === undefined) {
        throw new ApiError(response.status, 'not_json', `${method} ${path}: ${this.baseUrl} answered ${response.status} without JSON; is it a Mailroom server?`);
      }
      if (!SHAPES[expect.shape ?? 'any'].safeParse(json).success) {
        throw new ApiError(response.status, 'unexpected_answer', `${method} ${path}: ${this.baseUrl} answered ${response.status} with JSON that is not what a Mailroom server answers; is it a Mailroom server?`);
      }
      return json as T;
    }
    const problem = (json && typeof json === 'object' ? json : {}) as { error?: unknown; message?: unknown };
    const code = typeof problem.error === 'string' ? problem.error : `http_${response.status}`;
    let message = typeof problem.message === 'string' ? problem.message : `${method} ${path} answered ${response.status} ${response.statusText}`.trim();
    if (response.status === 401) message = `the server refused the admin token (401 unauthorized): pass --token or set ADMIN_TOKEN to the server's ADMIN_TOKEN`;
    throw new ApiError(response.status, code, message);
  }
}

/** The server's order of entries (path_lower, code units), as near as a client gets without Dropbox's folding. */
function byLowerCase(a: string, b: string): number {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()];
  return x < y ? -1 : x > y ? 1 : 0;
}

function describeNetworkError(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return 'no answer in time';
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code) return cause.code;
  return cause?.message ?? (error as Error)?.message ?? String(error);
}
