import { isAbsolute, resolve, sep } from 'node:path';
import picomatch from 'picomatch';

/**
 * Paths coming from Dropbox are untrusted input that ends up in `fs` calls. Everything here is
 * pure: it decides, the caller does the I/O.
 */

export class UnsafePathError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`refusing Dropbox path ${JSON.stringify(path.slice(0, 300))}: ${reason}`);
    this.name = 'UnsafePathError';
  }
}

export class InvalidIgnorePatternError extends Error {
  constructor(readonly pattern: string, cause?: unknown) {
    super(`invalid ignore pattern ${JSON.stringify(pattern)}: expected a non-empty glob such as "drafts/**" or "**/_private"`, { cause });
    this.name = 'InvalidIgnorePatternError';
  }
}

/** The longest file name ext4, APFS and most other file systems accept, in bytes. */
const MAX_SEGMENT_BYTES = 255;
// C0 controls (NUL included), DEL and C1 controls: never legitimate in a name, some terminals and
// tools interpret them.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
/** Unpaired UTF-16 surrogates can't be encoded as UTF-8: two different names would collide on disk. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const DRIVE_LETTER = /^[A-Za-z]:/;

/**
 * Maps a Dropbox display path ("/Posts/Hello.md") to an absolute path strictly inside `root`.
 * Throws UnsafePathError for anything malformed or able to escape: the check is by construction
 * (each segment is vetted) and then verified again on the resolved result.
 */
export function localPathFor(root: string, dropboxPath: string): string {
  if (!isAbsolute(root)) throw new Error(`local root must be an absolute folder, got ${JSON.stringify(root)}`);
  const resolvedRoot = resolve(root);

  if (!dropboxPath.startsWith('/')) throw new UnsafePathError(dropboxPath, 'must start with "/"');
  if (dropboxPath === '/') throw new UnsafePathError(dropboxPath, 'is the root itself, not a file or folder under it');
  if (dropboxPath.includes('\\')) throw new UnsafePathError(dropboxPath, 'contains a backslash');
  if (CONTROL_CHARACTER.test(dropboxPath)) throw new UnsafePathError(dropboxPath, 'contains a control character (NUL included)');
  if (LONE_SURROGATE.test(dropboxPath)) throw new UnsafePathError(dropboxPath, 'is not valid Unicode (unpaired surrogate)');

  const segments = dropboxPath.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '') throw new UnsafePathError(dropboxPath, 'has an empty segment ("//" or a trailing "/")');
    if (segment === '.' || segment === '..') throw new UnsafePathError(dropboxPath, `has a "${segment}" segment`);
    // "..." or ".. " are names on Linux and macOS, but tools that trim trailing dots and spaces
    // (Windows, some sync clients, shells) read them as "." or "..": refuse them all.
    if (/^[.\s]+$/.test(segment) && segment.includes('.')) throw new UnsafePathError(dropboxPath, `has a segment made only of dots and spaces (${JSON.stringify(segment)})`);
    if (DRIVE_LETTER.test(segment)) throw new UnsafePathError(dropboxPath, `segment ${JSON.stringify(segment)} looks like a Windows drive letter`);
    if (Buffer.byteLength(segment, 'utf8') > MAX_SEGMENT_BYTES) {
      throw new UnsafePathError(dropboxPath, `a segment is longer than ${MAX_SEGMENT_BYTES} bytes in UTF-8`);
    }
  }

  const local = resolve(resolvedRoot, ...segments);
  // The trailing separator keeps "/data/acct-evil" from passing as inside "/data/acct".
  const rootPrefix = resolvedRoot.endsWith(sep) ? resolvedRoot : resolvedRoot + sep;
  if (!local.startsWith(rootPrefix) || local.length === rootPrefix.length) {
    throw new UnsafePathError(dropboxPath, `resolves outside ${resolvedRoot}`);
  }
  return local;
}

/** The folder holding `pathLower`. Dropbox spells the root "", so "/a.md" has parent "". */
export function parentPathLower(pathLower: string): string {
  const slash = pathLower.lastIndexOf('/');
  return slash <= 0 ? '' : pathLower.slice(0, slash);
}

/** True for the folder itself and anything below it; "/a" does not contain "/ab". "" and "/" are the root. */
export function isUnder(childLower: string, folderLower: string): boolean {
  const folder = folderLower === '/' ? '' : folderLower;
  return childLower === folder || childLower.startsWith(folder + '/');
}

/**
 * Builds the "skip this path" predicate of the sync engine.
 *
 * A path is ignored when any segment starts with "." (.git, .DS_Store, editor temp files, drafts
 * hidden as ".draft.md"), or when a configured glob matches the path or any of its parent
 * folders. Globs are picomatch patterns, case-insensitive, with `dot: true`, matched against the
 * path without its leading slash ("posts/a.md"), so they are anchored at the root: "*.tmp"
 * matches only top-level files, "**\/*.tmp" matches at any depth. A leading "/" in a pattern is
 * accepted and means the same, and a trailing one is dropped ("drafts/" is "drafts"). Because parent
 * folders are tested too, "drafts", "drafts/", "drafts/**" and "**\/_private" each ignore the folder
 * and everything under it.
 */
export function createIgnoreRule(patterns: readonly string[]): (pathLower: string) => boolean {
  const matchers = patterns.map((pattern) => {
    // A trailing slash names a folder (gitignore's "drafts/"); to picomatch it is part of the name,
    // and such a pattern would match no path at all: every draft would be published.
    const anchored = (pattern.startsWith('/') ? pattern.slice(1) : pattern).replace(/\/+$/, '');
    if (anchored.trim() === '') throw new InvalidIgnorePatternError(pattern);
    try {
      return picomatch(anchored, { nocase: true, dot: true });
    } catch (error) {
      throw new InvalidIgnorePatternError(pattern, error);
    }
  });

  return (pathLower) => {
    const segments = pathLower.split('/').filter((segment) => segment !== '');
    if (segments.some((segment) => segment.startsWith('.'))) return true;
    if (matchers.length === 0) return false;
    for (let depth = 1; depth <= segments.length; depth++) {
      const candidate = segments.slice(0, depth).join('/');
      if (matchers.some((matches) => matches(candidate))) return true;
    }
    return false;
  };
}
