/**
 * Text from the server as the terminal will show it: control characters (C0, DEL, C1) written as
 * `\xNN`. Titles, paths and error messages come from what users put in Dropbox; raw, an escape
 * sequence in a post's first heading could clear the operator's screen, retitle the window or
 * fake output.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
