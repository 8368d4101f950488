/**
 * `?limit=` and `?cursor=` of the routes that answer a page at a time (GET /accounts, GET
 * /accounts/:id/entries): one request for everything read a large install's whole set into one
 * body. The cursor is Redis's SCAN cursor of the set or hash being walked, which Redis refuses
 * (an error reply) unless it is an unsigned 64-bit number.
 */

export const DEFAULT_PAGE_LIMIT = 500;
export const MAX_PAGE_LIMIT = 1000;
const MAX_CURSOR = 2n ** 64n - 1n;

/** `whole`: neither parameter given: the whole listing in one answer, as before paging (see pageRequest). */
export type PageRequest = { limit: number; cursor: string; whole: boolean };
export type PageRequestError = { error: 'invalid_limit' | 'invalid_cursor'; message: string };

/**
 * A request with neither `limit` nor `cursor` asks for the whole listing (`whole`), as every client
 * did before paging: a page of 500 instead would cut an older client's listing short without a
 * word. Such a request costs what the listing holds; `mailroom status` and `entries` page.
 */
export function pageRequest(query: { limit?: string; cursor?: string }): PageRequest | PageRequestError {
  // Digits only: Number() would take "1e2", " 5" or "0x10".
  const limit = query.limit === undefined ? undefined : /^[0-9]{1,4}$/.test(query.limit) ? Number(query.limit) : Number.NaN;
  const page = pageOptions({ limit, cursor: query.cursor });
  return isPageRequestError(page) ? page : { ...page, whole: query.limit === undefined && query.cursor === undefined };
}

/**
 * The library's form of the same parameters (`accountsPage`, `entriesPage`): a number and a
 * string, the same bounds and defaults, always a page.
 */
export function pageOptions(options: { limit?: number; cursor?: string }): PageRequest | PageRequestError {
  // Only an absent option takes its default: a null is a caller's mistake, not a request for one.
  const limit = options.limit === undefined ? DEFAULT_PAGE_LIMIT : options.limit;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) return { error: 'invalid_limit', message: `limit must be a whole number from 1 to ${MAX_PAGE_LIMIT}` };
  const cursor = options.cursor === undefined ? '0' : options.cursor;
  if (typeof cursor !== 'string' || !/^[0-9]{1,20}$/.test(cursor) || BigInt(cursor) > MAX_CURSOR) {
    return { error: 'invalid_cursor', message: 'cursor must be a string of digits, a whole number from 0 to 2^64-1: the `next` of an earlier page, or "0" for the first' };
  }
  return { limit, cursor, whole: false };
}

export function isPageRequestError(page: PageRequest | PageRequestError): page is PageRequestError {
  return 'error' in page;
}
