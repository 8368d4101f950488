import { callDropbox, DropboxBadInputError, DropboxEndpointError } from '../dropbox/call-dropbox.js';
import type { SyncDeps } from './sync-deps.js';
import type { ApplyInput, ListingStart } from './sync-store.js';
import { storedCursor } from './stored-cursor.js';
import { fromDropboxMetadata, MalformedEntryError, type ListedEntry } from './records.js';
import { SyncError } from './sync-failure.js';

export interface ListOutput {
  mode: 'continue' | 'full';
  pages: number;
  entries: number;
  /** What the apply step reads next, as the last page's save found it (see SyncStore.saveLastPage). */
  applyInput?: ApplyInput;
}

/**
 * `fetching`: page through list_folder (first sync, reset) or list_folder/continue, saving each
 * page's entries and cursor in one step the moment it arrives. A 409 from continue (reset, or the
 * cursor's folder gone) or a 400 (the cursor refused as bad input) drops the cursor and lists
 * everything again; the apply step reconciles.
 */
export async function listChanges(accountId: string, signal: AbortSignal, deps: SyncDeps): Promise<ListOutput> {
  const log = deps.log.child({ accountId, step: 'fetching' });
  const session = await deps.session(accountId);
  const call = { session, clock: deps.clock, signal, random: deps.random, maxAttempts: deps.maxAttemptsPerCall, baseDelayMs: deps.retryBaseDelayMs,
    onRetry: (info: { attempt: number; waitMs: number; reason: string }) => log.warn(info, 'dropbox call retried'),
    onCall: (info: { route: string; durationMs: number; status: number | 'network' | 'timeout' }) => deps.events.report('dropboxCall', info) };
  const start = await deps.store.beginListing(accountId, deps.clock.now());
  if (start.mode === 'placed') {
    // A page whose moves are placed waits for its commit: the apply step replays it first, and the
    // webhooks that came meanwhile (still dirty) make the run list once more after it.
    log.info('a listed page waits for its commit: applying it before listing');
    return { mode: 'continue', pages: 0, entries: 0 };
  }
  let { mode, from, fromStored } = start as ListingStart & { mode: 'continue' | 'full' };
  let pages = 0;
  let total = 0;
  let resets = 0;
  for (;;) {
    let page: { entries: unknown[]; cursor: string; has_more: boolean };
    try {
      page = from === ''
        ? (await callDropbox('files/list_folder', (c) => c.filesListFolder({ path: '', recursive: true, include_non_downloadable_files: false, limit: deps.pageLimit }), call)).result
        : (await callDropbox('files/list_folder/continue', (c) => c.filesListFolderContinue({ cursor: from }), call)).result;
    } catch (error) {
      // A 400 from continue refuses its only argument, the cursor: only a new listing gets past it.
      if ((error instanceof DropboxEndpointError || error instanceof DropboxBadInputError) && from !== '' && resets < 3) {
        resets++;
        log.warn(error instanceof DropboxEndpointError ? { tag: error.tag } : { err: error.message }, 'cursor no longer valid: listing everything again');
        await deps.store.resetListing(accountId);
        // No page can have been placed in between: this step is the account's only writer.
        ({ mode, from, fromStored } = (await deps.store.beginListing(accountId, deps.clock.now())) as ListingStart & { mode: 'continue' | 'full' });
        continue;
      }
      if (error instanceof DropboxEndpointError) {
        throw new SyncError({ kind: 'dropbox_unavailable', message: `list_folder failed: ${error.message}`, at: deps.clock.now(), jitter: deps.random() });
      }
      throw error;
    }
    const entries: ListedEntry[] = [];
    for (const raw of page.entries) {
      try {
        entries.push(fromDropboxMetadata(raw as Parameters<typeof fromDropboxMetadata>[0]));
      } catch (error) {
        if (!(error instanceof MalformedEntryError)) throw error;
        log.warn({ err: error.message }, 'skipped a list entry');
      }
    }
    pages++;
    total += entries.length;
    if (page.has_more) {
      await deps.store.savePage(accountId, fromStored, page.cursor, entries);
      from = page.cursor;
      fromStored = storedCursor(page.cursor);
      continue;
    }
    // The last page's save also reads what the apply step needs next (handed to it, see step-actors).
    const { applyInput } = await deps.store.saveLastPage(accountId, fromStored, page.cursor, entries);
    log.info({ mode, pages, entries: total }, 'listed');
    deps.events.report('listed', { accountId, mode, pages, entries: total });
    return { mode, pages, entries: total, ...(applyInput ? { applyInput } : {}) };
  }
}
