import { randomBytes } from 'node:crypto';
import { encodeCursor, type Cursor, type JournalCursor } from './cursor.js';
import type { Metadata } from './metadata.js';
import type { DropboxModel } from './model.js';
import { isSameOrInside, parentPathLower } from './paths.js';

export type ListFolderResult = { entries: Metadata[]; cursor: string; has_more: boolean };

/** Why a cursor can't be continued; the route turns these into Dropbox's 409 bodies. */
export class CursorResetError extends Error {
  constructor() {
    super('cursor reset');
    this.name = 'CursorResetError';
  }
}
export class CursorFolderGoneError extends Error {
  constructor() {
    super('the folder the cursor lists no longer exists');
    this.name = 'CursorFolderGoneError';
  }
}

type Snapshot = { entries: Metadata[]; position: number };

function inScope(metadata: Metadata, scope: string, recursive: boolean): boolean {
  if (recursive) return isSameOrInside(metadata.path_lower, scope);
  return metadata.path_lower === scope || parentPathLower(metadata.path_lower) === scope;
}

/**
 * list_folder and list_folder/continue over the model. An initial listing is a snapshot of the tree
 * taken when it starts; its last page's cursor points at the journal position of that moment, so
 * anything changed while the client was paging arrives through continue afterwards.
 */
export class ListingService {
  private readonly snapshots = new Map<string, Snapshot>();

  constructor(private readonly model: DropboxModel) {}

  /** `includeDeleted` only adds to this listing: deletions after it come through continue either way. */
  start(accountId: string, scope: string, recursive: boolean, limit: number, includeDeleted = false): ListFolderResult {
    const listingId = randomBytes(12).toString('base64url');
    this.snapshots.set(listingId, {
      entries: this.model.snapshot(accountId, scope, recursive, includeDeleted),
      position: this.model.journalPosition(accountId),
    });
    const generation = this.model.generation(accountId);
    return this.page({ kind: 'listing', account: accountId, epoch: this.model.epoch, generation, scope, recursive, limit, listingId, offset: 0 });
  }

  latestCursor(accountId: string, scope: string, recursive: boolean, limit: number): string {
    return encodeCursor({
      kind: 'journal',
      account: accountId,
      epoch: this.model.epoch,
      generation: this.model.generation(accountId),
      scope,
      recursive,
      limit,
      position: this.model.journalPosition(accountId),
    });
  }

  /** The caller has already checked that the cursor belongs to the authenticated account. */
  continue(cursor: Cursor): ListFolderResult {
    if (!this.isCurrent(cursor)) throw new CursorResetError();
    if (!this.model.folderExists(cursor.account, cursor.scope)) throw new CursorFolderGoneError();
    return this.page(cursor);
  }

  /** For longpoll: whether continue would return anything now. */
  hasChanges(cursor: Cursor): boolean {
    if (!this.isCurrent(cursor)) throw new CursorResetError();
    if (cursor.kind === 'listing') return true;
    return this.model
      .journalAfter(cursor.account, cursor.position)
      .some((entry) => inScope(entry.metadata, cursor.scope, cursor.recursive));
  }

  /** Whether the cursor points into this model's journal as it is (not another model's, not before a reset). */
  private isCurrent(cursor: Cursor): boolean {
    return cursor.epoch === this.model.epoch && cursor.generation === this.model.generation(cursor.account);
  }

  private page(cursor: Cursor): ListFolderResult {
    if (cursor.kind === 'listing') {
      const snapshot = this.snapshots.get(cursor.listingId);
      // Snapshots are kept (a client may retry the last page); one is missing only after a restart,
      // which Dropbox would report as a reset too.
      if (!snapshot) throw new CursorResetError();
      const end = cursor.offset + cursor.limit;
      const entries = snapshot.entries.slice(cursor.offset, end);
      if (end < snapshot.entries.length) {
        return { entries, cursor: encodeCursor({ ...cursor, offset: end }), has_more: true };
      }
      const { listingId: _id, offset: _offset, ...scope } = cursor;
      return { entries, cursor: encodeCursor({ ...scope, kind: 'journal', position: snapshot.position }), has_more: false };
    }
    return this.journalPage(cursor);
  }

  private journalPage(cursor: JournalCursor): ListFolderResult {
    const entries: Metadata[] = [];
    let position = cursor.position;
    for (const entry of this.model.journalAfter(cursor.account, cursor.position)) {
      if (!inScope(entry.metadata, cursor.scope, cursor.recursive)) {
        position = entry.seq;
        continue;
      }
      if (entries.length === cursor.limit) {
        return { entries, cursor: encodeCursor({ ...cursor, position }), has_more: true };
      }
      entries.push(entry.metadata);
      position = entry.seq;
    }
    return { entries, cursor: encodeCursor({ ...cursor, position }), has_more: false };
  }
}
