/** Dropbox path rules the emulator needs: case-insensitive keys, display casing kept separately. */

export class MalformedPathError extends Error {
  constructor(readonly path: string) {
    super(`malformed Dropbox path: ${JSON.stringify(path)}`);
    this.name = 'MalformedPathError';
  }
}

/** "/A/b.txt" → ["A", "b.txt"]. The root ("" ) has no components. */
export function pathComponents(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new MalformedPathError(path);
  const parts = path.slice(1).replace(/\/+$/, '').split('/');
  if (parts.length === 1 && parts[0] === '') throw new MalformedPathError(path);
  if (parts.some((part) => part === '' || part === '.' || part === '..')) throw new MalformedPathError(path);
  return parts;
}

/** Dropbox keys paths by a lowercased, NFC-normalised form; the real server has more quirks, this is enough. */
export function lowerPath(path: string): string {
  return path.normalize('NFC').toLowerCase();
}

export function joinComponents(parts: readonly string[]): string {
  return parts.length === 0 ? '' : '/' + parts.join('/');
}

export function parentPathLower(pathLower: string): string {
  return pathLower.slice(0, pathLower.lastIndexOf('/'));
}

export function isSameOrInside(pathLower: string, ancestorLower: string): boolean {
  return ancestorLower === '' || pathLower === ancestorLower || pathLower.startsWith(ancestorLower + '/');
}

/** common.DropboxTimestamp: UTC, whole seconds, no fraction. */
export function dropboxTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
