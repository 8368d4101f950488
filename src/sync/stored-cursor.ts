import { createHash } from 'node:crypto';

/**
 * How a Dropbox cursor is kept in Redis. Cursors are opaque strings, in practice base64url (152
 * and 195 characters in the wild), and after the sealed credentials the committed cursor is the
 * largest value an idle account keeps: at 195 characters it alone took the control state over
 * 1 KiB (docs/benchmarks.md, figure 7). A cursor that is canonical base64url is stored as its bytes
 * behind a marker byte, a quarter shorter; any other string as its text. Either way it reads back
 * as exactly the string Dropbox gave. Where a listing script compares cursors (a page's save), the
 * caller hands back the cursor exactly as it read it or wrote it, so a cursor an older version
 * stored as text (the layout before this one) is taken as it is, and the next commit stores its
 * successor in this form.
 */
const BYTES_MARKER = 0x01;
/** Put before a text cursor that starts with a marker byte itself, so it is never read as bytes. */
const TEXT_MARKER = 0x00;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** A cursor as Redis holds it: bytes behind a marker, or text. */
export type StoredCursor = Buffer | string;

/** The form `cursor` is stored in: '' (no cursor: list from scratch) stays ''. */
export function storedCursor(cursor: string): StoredCursor {
  if (cursor === '') return '';
  if (BASE64URL.test(cursor)) {
    const bytes = Buffer.from(cursor, 'base64url');
    // Only a canonical encoding: a string whose last character carries stray bits would read back otherwise.
    if (bytes.toString('base64url') === cursor) return Buffer.concat([Buffer.of(BYTES_MARKER), bytes]);
  }
  const first = cursor.charCodeAt(0);
  return first === BYTES_MARKER || first === TEXT_MARKER ? String.fromCharCode(TEXT_MARKER) + cursor : cursor;
}

/** The cursor a stored value holds (storedCursor's inverse); an empty value is '' (list from scratch). */
export function cursorFromStored(stored: Buffer): string {
  if (stored.length === 0) return '';
  if (stored[0] === BYTES_MARKER) return stored.subarray(1).toString('base64url');
  if (stored[0] === TEXT_MARKER) return stored.subarray(1).toString('utf8');
  return stored.toString('utf8');
}

/**
 * What names a listed page to the apply step: the SHA-1 (hex) of its stored cursor, as
 * lib/apply-read.lua computes it. The step needs the page only to say which one its plan covered
 * (changes-commit.lua's compare-and-set), and a hex name keeps the bytes out of a reply read as text.
 */
export function listedPageId(cursor: string): string {
  return createHash('sha1').update(storedCursor(cursor)).digest('hex');
}
