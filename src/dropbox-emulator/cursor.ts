/**
 * Cursors are opaque to clients; here they are base64url JSON so a failing test can decode one.
 * A journal cursor points after an entry of the account's journal; a listing cursor points into a
 * server-side snapshot of an initial listing still being paged.
 */

/**
 * `epoch`: the model the cursor points into (DropboxModel.epoch). A cursor from another model (an
 * emulator started again, serving the same folder afresh) points into a journal that no longer
 * exists: it is reset, as Dropbox resets a cursor it can no longer serve. Cursors written before
 * epochs existed have none, and are reset too.
 */
type CursorScope = { account: string; epoch?: string; generation: number; scope: string; recursive: boolean; limit: number };
export type JournalCursor = CursorScope & { kind: 'journal'; position: number };
export type ListingCursor = CursorScope & { kind: 'listing'; listingId: string; offset: number };
export type Cursor = JournalCursor | ListingCursor;

export class InvalidCursorError extends Error {
  constructor(readonly cursor: string) {
    super('invalid cursor');
    this.name = 'InvalidCursorError';
  }
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor), 'utf8').toString('base64url');
}

export function decodeCursor(text: string): Cursor {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError(text);
  }
  if (!isCursor(value)) throw new InvalidCursorError(text);
  return value;
}

function isCursor(value: unknown): value is Cursor {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const scoped =
    typeof v.account === 'string' &&
    (v.epoch === undefined || typeof v.epoch === 'string') &&
    typeof v.generation === 'number' &&
    typeof v.scope === 'string' &&
    typeof v.recursive === 'boolean' &&
    typeof v.limit === 'number';
  if (!scoped) return false;
  if (v.kind === 'journal') return typeof v.position === 'number';
  if (v.kind === 'listing') return typeof v.listingId === 'string' && typeof v.offset === 'number';
  return false;
}
