import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { credentialFields, hasCredential, NO_CREDENTIAL } from '../accounts/account-store.js';
import { ACCOUNT_STATES } from '../../machines/account.machine.js';
import type { Engine } from '../engine/engine.js';
import { ACCOUNT_ID_RULE, isValidAccountId } from '../redis/keys.js';
import { isPageRequestError, pageRequest } from './paging.js';
import { createIgnoreRule, InvalidIgnorePatternError } from '../sync/paths.js';

const LINK_BODY_LIMIT = 1024 * 1024;

/**
 * Strict, like the credentials: a re-link replaces the ignore rules, so a misspelt `ignore`
 * (`ignores`, `Ignore`) dropped silently would link with none and publish what they kept out.
 */
const linkSchema = z
  .strictObject({ ...credentialFields, ignore: z.array(z.string().min(1).max(500)).max(200).optional() })
  .refine(hasCredential, NO_CREDENTIAL);

/** The account API (behind the admin token): link, unlink, status, entries, resync. */
export function accountRoutes(engine: Engine): Hono {
  const routes = new Hono();

  routes.use('/:accountId/*', async (c, next) => {
    if (!isValidAccountId(c.req.param('accountId'))) return c.json({ error: 'invalid_account_id', message: `account ids are ${ACCOUNT_ID_RULE}` }, 400);
    await next();
  });
  routes.use('/:accountId', async (c, next) => {
    if (!isValidAccountId(c.req.param('accountId'))) return c.json({ error: 'invalid_account_id', message: `account ids are ${ACCOUNT_ID_RULE}` }, 400);
    await next();
  });

  // Paged (`?limit=`, `?cursor=`; without either, the whole listing, see pageRequest): one request
  // for every account read 100,000 statuses into one body of 23.5 to 27.7 MB, in 10 to 34 s. `?state=awaitingRelink` keeps, of each page, the accounts an operator must
  // act on (one read per account to find them), so a page can be empty with a `next`: follow `next`
  // until it is null.
  routes.get('/', async (c) => {
    const state = c.req.query('state');
    if (state !== undefined && !(ACCOUNT_STATES as readonly string[]).includes(state)) {
      return c.json({ error: 'invalid_state', message: `state must be one of ${ACCOUNT_STATES.join(', ')}` }, 400);
    }
    const page = pageRequest(c.req.query());
    if (isPageRequestError(page)) return c.json(page, 400);
    return c.json(await engine.statusPage(page.whole ? null : page, state));
  });

  // Two tokens and 200 ignore patterns of 500 characters fit, even written as \\u escapes.
  // `Connection: close`: the unread rest of the body is still on the wire (see webhook-routes.ts).
  const linkBodyLimit = bodyLimit({
    maxSize: LINK_BODY_LIMIT,
    onError: (c) => c.json({ error: 'too_large', message: `the body is over ${LINK_BODY_LIMIT / 1024 / 1024} MiB` }, 413, { Connection: 'close' }),
  });
  routes.put('/:accountId', linkBodyLimit, async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: 'invalid_json', message: 'send a JSON body like {"accessToken": "..."} or {"refreshToken": "..."}' }, 400);
    }
    // Before the schema: its message for a non-object names no field and says nothing of what to send.
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return c.json({ error: 'invalid_body', message: 'the body must be a JSON object like {"accessToken": "..."} or {"refreshToken": "..."}' }, 400);
    }
    const parsed = linkSchema.safeParse(body);
    if (!parsed.success) return c.json({ error: 'invalid_body', message: parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') }, 400);
    const { accessToken, refreshToken, ignore = [] } = parsed.data;
    try {
      createIgnoreRule(ignore);
    } catch (error) {
      if (error instanceof InvalidIgnorePatternError) return c.json({ error: 'invalid_ignore', message: error.message }, 400);
      throw error;
    }
    const accountId = c.req.param('accountId');
    const credentials = { ...(accessToken ? { accessToken } : {}), ...(refreshToken ? { refreshToken } : {}) };
    const problem = engine.credentialsProblem(credentials);
    if (problem) return c.json({ error: 'invalid_body', message: problem }, 400);
    await engine.link(accountId, credentials, ignore);
    return c.json(await engine.status(accountId), 200);
  });

  routes.delete('/:accountId', async (c) => {
    const existed = await engine.unlink(c.req.param('accountId'));
    return existed ? c.body(null, 204) : notLinked(c.req.param('accountId'));
  });

  routes.get('/:accountId', async (c) => {
    const status = await engine.status(c.req.param('accountId'));
    return status ? c.json(status) : notLinked(c.req.param('accountId'));
  });

  // Paged like the listing of accounts: a blog of thousands of posts was one HGETALL of every
  // entry's HTML, and one body of all of it.
  routes.get('/:accountId/entries', async (c) => {
    const accountId = c.req.param('accountId');
    const page = pageRequest(c.req.query());
    if (isPageRequestError(page)) return c.json(page, 400);
    if (!(await engine.accounts.get(accountId))) return notLinked(accountId);
    return c.json(page.whole ? { entries: await engine.entries.list(accountId), next: null } : await engine.entries.listPage(accountId, page.cursor, page.limit));
  });

  routes.post('/:accountId/resync', async (c) => {
    const accountId = c.req.param('accountId');
    return (await engine.resync(accountId)) ? c.json({ accountId, resync: 'requested' }, 202) : notLinked(accountId);
  });

  return routes;
}

function notLinked(accountId: string): Response {
  return Response.json({ error: 'not_linked', message: `account ${accountId} is not linked; PUT /accounts/${accountId} first` }, { status: 404 });
}
