import type { Hono } from 'hono';
import { badRequest } from './api-error.js';
import { authenticate } from './auth.js';
import { accountedCall, faultResponse } from './call-guard.js';
import { decodeCursor, InvalidCursorError, type Cursor } from './cursor.js';
import type { EmulatorContext, EmulatorDeps, EmulatorEnv } from './http-context.js';
import type { ListFolderResult } from './listing.js';
import type { Metadata } from './metadata.js';
import {
  getMetadataArg,
  listFolderArg,
  listFolderContinueArg,
  longpollArg,
  parseArgument,
} from './request-validation.js';

/** The JSON-in, JSON-out routes on api.dropboxapi.com (and longpoll, which lives on notify). */
export function registerRpcRoutes(app: Hono<EmulatorEnv>, deps: EmulatorDeps): void {
  const { model, listings } = deps;

  /** Auth, accounting and faults around a route body that receives the raw request text. */
  function rpc(route: string, handle: (accountId: string, body: string) => unknown): void {
    app.post(`/2/${route}`, async (c) => {
      const accountId = authenticate(c, deps, route);
      return accountedCall(deps, route, accountId, async () => {
        const fault = await faultResponse(c, deps, route, accountId, deps.faults.take(route, accountId));
        if (fault) return fault;
        return c.json(handle(accountId, await c.req.text()) as object);
      });
    });
  }

  function cursorFor(accountId: string, text: string): Cursor {
    const cursor = decodeCursor(text);
    // Another account's cursor is as meaningless to this token as garbage.
    if (cursor.account !== accountId) throw new InvalidCursorError(text);
    return cursor;
  }

  function listingScope(route: string, accountId: string, body: string) {
    const arg = parseArgument(route, 'request body', body, listFolderArg);
    if (arg.path === '/') {
      throw badRequest(route, 'request body: path: Specify the root folder as an empty string rather than as "/".');
    }
    return {
      scope: model.folderScope(accountId, arg.path),
      recursive: arg.recursive ?? false,
      limit: arg.limit ?? deps.pageLimit,
      includeDeleted: arg.include_deleted ?? false,
    };
  }

  /** A listing as this server sends it: without `content_hash` when it is set not to compute them. */
  function asListed(result: ListFolderResult): ListFolderResult {
    if (deps.listsContentHash) return result;
    const withoutHash = (entry: Metadata): Metadata => {
      if (entry['.tag'] !== 'file') return entry;
      const { content_hash: _dropped, ...rest } = entry;
      return rest as Metadata;
    };
    return { ...result, entries: result.entries.map(withoutHash) };
  }

  rpc('files/list_folder', (accountId, body) => {
    const { scope, recursive, limit, includeDeleted } = listingScope('files/list_folder', accountId, body);
    return asListed(listings.start(accountId, scope, recursive, limit, includeDeleted));
  });

  rpc('files/list_folder/continue', (accountId, body) => {
    const route = 'files/list_folder/continue';
    const arg = parseArgument(route, 'request body', body, listFolderContinueArg);
    return asListed(listings.continue(cursorFor(accountId, arg.cursor)));
  });

  rpc('files/list_folder/get_latest_cursor', (accountId, body) => {
    const { scope, recursive, limit } = listingScope('files/list_folder/get_latest_cursor', accountId, body);
    return { cursor: listings.latestCursor(accountId, scope, recursive, limit) };
  });

  rpc('files/get_metadata', (accountId, body) => {
    const route = 'files/get_metadata';
    const arg = parseArgument(route, 'request body', body, getMetadataArg);
    if (arg.path === '' || arg.path === '/') throw badRequest(route, 'request body: path: The root folder is unsupported.');
    return model.metadataOf(accountId, arg.path);
  });

  rpc('users/get_current_account', (accountId) => ({
    account_id: accountId,
    name: { given_name: 'Emulated', surname: 'User', familiar_name: 'Emulated', display_name: 'Emulated User', abbreviated_name: 'EU' },
    email: `${accountId.replace(/[^a-z0-9]/gi, '').toLowerCase()}@example.invalid`,
    email_verified: true,
    disabled: false,
    locale: 'en',
    referral_link: 'https://db.tt/emulated',
    is_paired: false,
    account_type: { '.tag': 'basic' },
    root_info: { '.tag': 'user', root_namespace_id: '1', home_namespace_id: '1' },
    country: 'US',
  }));

  // Longpoll is `noauth` (the SDK sends no Authorization header); the cursor names the account.
  app.post('/2/files/list_folder/longpoll', async (c: EmulatorContext) => {
    const route = 'files/list_folder/longpoll';
    const arg = parseArgument(route, 'request body', await c.req.text(), longpollArg);
    const cursor = decodeCursor(arg.cursor);
    if (!model.hasAccount(cursor.account)) throw new InvalidCursorError(arg.cursor);
    const end = deps.stats.begin(cursor.account, route);
    try {
      const fault = await faultResponse(c, deps, route, cursor.account, deps.faults.take(route, cursor.account));
      if (fault) return fault;
      // No jitter: real Dropbox may add up to 90 s, which tests have no use for.
      const deadline = AbortSignal.any([AbortSignal.timeout((arg.timeout ?? 30) * 1000), deps.closing, c.req.raw.signal]);
      while (!listings.hasChanges(cursor) && !deadline.aborted) {
        await new Promise<void>((resolve) => {
          const stop = model.onChange((changed) => changed === cursor.account && done());
          deadline.addEventListener('abort', done, { once: true });
          function done(): void {
            stop();
            deadline.removeEventListener('abort', done);
            resolve();
          }
        });
      }
      return c.json({ changes: listings.hasChanges(cursor) });
    } finally {
      end();
    }
  });
}
