/**
 * Dropbox's "HTTP header safe" JSON: 0x7F and every non-ASCII UTF-16 unit as \uXXXX. Node refuses to
 * send a header value with raw non-ASCII characters (ERR_INVALID_CHAR), and that is what Dropbox does.
 */
export function headerSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0'));
}

/**
 * Node decodes header bytes as latin1; a client that sent raw UTF-8 instead of escapes would otherwise
 * reach JSON.parse as mojibake.
 */
export function decodeHeaderText(raw: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(raw)) return raw;
  return Buffer.from(raw, 'latin1').toString('utf8');
}
