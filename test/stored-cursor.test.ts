import { describe, expect, it } from 'vitest';
import { cursorFromStored, listedPageId, storedCursor } from '../src/sync/stored-cursor.js';

const read = (stored: Buffer | string) => cursorFromStored(Buffer.isBuffer(stored) ? stored : Buffer.from(stored, 'utf8'));

/** Two cursors Dropbox returned (from public test fixtures): 152 and 195 characters of base64url. */
const DROPBOX_CURSORS = [
  'AAGFHXqUgavlrBd2TBDxKNdV2rnu48QeThbxccGEvaSwiAAIt5-iho9P8EJIIVdSh6RKRNHq-An2lyyjJ34yCOhyBcIa6Gh6tYOko_okZgZTP_Ga0-kqHtm1HaQOQNdOmPPoNwiXB_rflzSLwq6AXi_F',
  'AAGCmtkBfAAxfYBp8WQUxW5pxUiT8YqEgBZkX5XJcUPP9Jn30T1dEKOkZtTKXzlUHPqNnKmEkXy9CrRDZmfHrnwyl68rwi6oEHVcwa4l8-BT_nHsZ6chH00bnqOZtgWymatxb_Lyh3EL4JlJ_ENLOYje6Y3OWGqOmE3DP_RfbV1Z-KBFLUqO2ARoQi9MfavtEi8',
];

describe('a cursor as Redis keeps it', () => {
  it('stores a base64url cursor as its bytes, a quarter shorter, and reads back the same string', () => {
    for (const cursor of DROPBOX_CURSORS) {
      const stored = storedCursor(cursor);
      expect(Buffer.isBuffer(stored)).toBe(true);
      expect(stored.length).toBe(1 + Math.floor((cursor.length * 3) / 4));
      expect(read(stored)).toBe(cursor);
    }
  });

  it('keeps any other string as text, and reads back exactly what Dropbox gave', () => {
    // Not canonical base64url (stray bits in the last character), other alphabets, markers, Unicode.
    for (const cursor of ['c9', 'ZtkX9_EHj3x7+/==', 'has space', '\u0001starts-with-a-marker', '\u0000also', 'é✓𝄞', 'AAE']) {
      expect(read(storedCursor(cursor))).toBe(cursor);
    }
    expect(storedCursor('c9')).toBe('c9');
  });

  it('keeps "no cursor" as the empty string, which means list from scratch', () => {
    expect(storedCursor('')).toBe('');
    expect(read('')).toBe('');
  });

  it('reads a cursor the layout before this one stored as text', () => {
    for (const cursor of DROPBOX_CURSORS) expect(read(cursor)).toBe(cursor);
  });

  it('round-trips random strings, and the same cursor always has the same stored form', () => {
    const alphabet = 'ABCxyz019-_+/= :é\u0000\u0001';
    for (let seed = 1; seed <= 2_000; seed++) {
      let cursor = '';
      for (let i = 0, x = seed; i < 1 + (seed % 40); i++, x = (x * 1103515245 + 12345) % 2 ** 31) cursor += alphabet[x % alphabet.length];
      expect(read(storedCursor(cursor))).toBe(cursor);
      expect(listedPageId(cursor)).toBe(listedPageId(cursor));
    }
    expect(listedPageId(DROPBOX_CURSORS[0]!)).not.toBe(listedPageId(DROPBOX_CURSORS[1]!));
  });
});
