import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { relative } from 'node:path';
import {
  createIgnoreRule, InvalidIgnorePatternError, isUnder, localPathFor, parentPathLower, UnsafePathError,
} from '../src/sync/paths.js';

const ROOT = '/data/acct';

describe('localPathFor', () => {
  it('maps a display path under the root, keeping its case and Unicode', () => {
    expect(localPathFor(ROOT, '/Posts/Hello.md')).toBe('/data/acct/Posts/Hello.md');
    expect(localPathFor(ROOT, '/Café/naïve 🎉.md')).toBe('/data/acct/Café/naïve 🎉.md');
    expect(localPathFor('/data/acct/', '/a.md')).toBe('/data/acct/a.md');
    expect(localPathFor('/', '/a.md')).toBe('/a.md');
  });

  it('allows names that merely contain dots or look odd but are harmless', () => {
    for (const path of ['/..a', '/a..', '/.git/config', '/a/.b', '/notes:2024', '/%2e%2e/x', '/ space /x']) {
      expect(localPathFor(ROOT, path)).toBe(ROOT + path);
    }
  });

  it.each([
    ['posts/a.md', 'must start with "/"'],
    ['', 'must start with "/"'],
    ['/', 'root itself'],
    ['/../etc/passwd', '".." segment'],
    ['/a/../../x', '".." segment'],
    ['/..', '".." segment'],
    ['/...', 'only of dots and spaces'],
    ['/.. /x', 'only of dots and spaces'],
    ['/a/. ', 'only of dots and spaces'],
    ['/./a', '"." segment'],
    ['/a//b', 'empty segment'],
    ['/a/', 'empty segment'],
    ['/a\u0000.md', 'control character'],
    ['/a\nb', 'control character'],
    ['/a\u0085b', 'control character'],
    ['/a\\..\\..\\x', 'backslash'],
    ['/C:/Windows', 'drive letter'],
    ['/c:evil', 'drive letter'],
    [`/${'a'.repeat(256)}`, 'longer than 255 bytes'],
    [`/${'é'.repeat(128)}`, 'longer than 255 bytes'],
    ['/bad\uD800name', 'unpaired surrogate'],
  ])('refuses %j (%s)', (path, reason) => {
    let caught: unknown;
    try { localPathFor(ROOT, path); } catch (error) { caught = error; }
    expect(caught).toBeInstanceOf(UnsafePathError);
    expect((caught as UnsafePathError).path).toBe(path);
    expect((caught as UnsafePathError).reason).toContain(reason);
  });

  it('accepts a 255-byte segment', () => {
    expect(localPathFor(ROOT, `/${'a'.repeat(255)}`)).toBe(`${ROOT}/${'a'.repeat(255)}`);
  });

  it('refuses a relative root (a configuration error, not an unsafe path)', () => {
    expect(() => localPathFor('data/acct', '/a.md')).toThrow(/absolute/);
  });

  // Generators lean on the characters that matter, so escapes are actually attempted.
  const nastySegment = fc.oneof(
    fc.constantFrom('..', '.', '', 'a', 'acct-evil', '\\', '..\\..', 'C:', '\u0000', '~', '%2e%2e', 'é', '\uD800'),
    fc.string({ unit: 'binary', maxLength: 8 }),
    fc.string({ maxLength: 300 }),
  );
  const nastyPath = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.tuple(fc.boolean(), fc.array(nastySegment, { maxLength: 6 }))
      .map(([leadingSlash, segments]) => (leadingSlash ? '/' : '') + segments.join('/')),
  );

  it('either throws UnsafePathError or lands strictly inside the root (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom('/data/acct', '/data/acct/', '/'), nastyPath, (root, path) => {
        let local: string;
        try {
          local = localPathFor(root, path);
        } catch (error) {
          expect(error).toBeInstanceOf(UnsafePathError);
          return;
        }
        const rootPrefix = root.endsWith('/') ? root : `${root}/`;
        expect(local.startsWith(rootPrefix)).toBe(true);
        expect(local.length).toBeGreaterThan(rootPrefix.length);
        const rel = relative(root, local);
        expect(rel === '' || rel === '..' || rel.startsWith('../')).toBe(false);
        // Nothing is normalised away: what is written is exactly what Dropbox named.
        expect(local).toBe(rootPrefix + path.slice(1));
      }),
      { numRuns: 2_000 },
    );
  });

  const safeSegment = fc.string({ minLength: 1, maxLength: 40 })
    .filter((s) => !/[/\\\u0000-\u001f\u007f-\u009f]/.test(s) && s !== '.' && s !== '..' && !/^[A-Za-z]:/.test(s));

  it('accepts every path made of ordinary segments (property)', () => {
    fc.assert(
      fc.property(fc.array(safeSegment, { minLength: 1, maxLength: 6 }), (segments) => {
        const path = `/${segments.join('/')}`;
        expect(localPathFor(ROOT, path)).toBe(ROOT + path);
      }),
    );
  });
});

describe('parentPathLower', () => {
  it('returns the containing folder, "" for the root', () => {
    expect(parentPathLower('/posts/2024/a.md')).toBe('/posts/2024');
    expect(parentPathLower('/a.md')).toBe('');
    expect(parentPathLower('')).toBe('');
  });
});

describe('isUnder', () => {
  it('is true for the folder itself and its descendants only', () => {
    expect(isUnder('/a', '/a')).toBe(true);
    expect(isUnder('/a/b.md', '/a')).toBe(true);
    expect(isUnder('/a/b/c.md', '/a')).toBe(true);
    expect(isUnder('/ab', '/a')).toBe(false);
    expect(isUnder('/ab/c.md', '/a')).toBe(false);
    expect(isUnder('/a', '/a/b')).toBe(false);
    expect(isUnder('/a.md', '/a')).toBe(false);
  });

  it('treats "" and "/" as the root, which holds everything', () => {
    expect(isUnder('/a/b.md', '')).toBe(true);
    expect(isUnder('/a/b.md', '/')).toBe(true);
  });

  it('agrees with parentPathLower: every ancestor contains the path (property)', () => {
    const segment = fc.string({ minLength: 1, maxLength: 5 }).filter((s) => !s.includes('/'));
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segments) => {
        const path = `/${segments.join('/')}`;
        for (let folder = parentPathLower(path); ; folder = parentPathLower(folder)) {
          expect(isUnder(path, folder)).toBe(true);
          if (folder === '') break;
        }
        // A sibling sharing the name as a prefix is never inside.
        expect(isUnder(`${path}x`, path)).toBe(false);
      }),
    );
  });
});

describe('createIgnoreRule', () => {
  it('ignores any path with a segment starting with "."', () => {
    const ignored = createIgnoreRule([]);
    for (const path of ['/.git/config', '/posts/.draft.md', '/.ds_store', '/a/.hidden/b/c.md', '/~/.x']) {
      expect(ignored(path), path).toBe(true);
    }
    for (const path of ['/posts/a.md', '/a.b/c.md', '/posts/draft.md.', '/', '']) {
      expect(ignored(path), path).toBe(false);
    }
  });

  it('matches globs against the path without its leading slash, anchored at the root', () => {
    const ignored = createIgnoreRule(['*.tmp', '**/*.bak']);
    expect(ignored('/a.tmp')).toBe(true);
    expect(ignored('/posts/a.tmp')).toBe(false);
    expect(ignored('/a.bak')).toBe(true);
    expect(ignored('/posts/deep/a.bak')).toBe(true);
  });

  it('ignores everything under a folder a pattern matches', () => {
    const ignored = createIgnoreRule(['drafts/**', '**/_private', 'archive']);
    expect(ignored('/drafts')).toBe(true);
    expect(ignored('/drafts/a.md')).toBe(true);
    expect(ignored('/drafts/2024/a.md')).toBe(true);
    expect(ignored('/_private/a.md')).toBe(true);
    expect(ignored('/posts/_private/a.md')).toBe(true);
    expect(ignored('/posts/_private/deep/a.md')).toBe(true);
    expect(ignored('/archive/old.md')).toBe(true);
    expect(ignored('/posts/drafts/a.md')).toBe(false);
    expect(ignored('/draftsman/a.md')).toBe(false);
    expect(ignored('/posts/_private.md')).toBe(false);
    expect(ignored('/posts/a.md')).toBe(false);
  });

  it('is case-insensitive and lets dotted names match globs (dot: true)', () => {
    const ignored = createIgnoreRule(['Drafts/**', '**/*.MD.orig']);
    expect(ignored('/drafts/a.md')).toBe(true);
    expect(ignored('/posts/a.md.orig')).toBe(true);
  });

  it('accepts a leading slash in a pattern as the same anchor', () => {
    const ignored = createIgnoreRule(['/drafts/**']);
    expect(ignored('/drafts/a.md')).toBe(true);
    expect(ignored('/posts/drafts/a.md')).toBe(false);
  });

  it('reads a trailing slash as the folder (gitignore\'s "drafts/"), instead of a pattern that matches nothing', () => {
    const ignored = createIgnoreRule(['drafts/', '**/_private/']);
    expect(ignored('/drafts')).toBe(true);
    expect(ignored('/drafts/a.md')).toBe(true);
    expect(ignored('/posts/_private/a.md')).toBe(true);
    expect(ignored('/posts/drafts/a.md')).toBe(false);
    expect(ignored('/draftsman/a.md')).toBe(false);
    expect(() => createIgnoreRule(['//'])).toThrow(InvalidIgnorePatternError);
  });

  it('refuses an empty pattern, naming it', () => {
    expect(() => createIgnoreRule(['ok/**', ''])).toThrow(InvalidIgnorePatternError);
    expect(() => createIgnoreRule(['/'])).toThrow(InvalidIgnorePatternError);
  });

  it('ignores a descendant whenever it ignores the folder (property)', () => {
    const segment = fc.constantFrom('drafts', '_private', 'posts', 'a', '.git', 'x.md', 'Drafts');
    const ignored = createIgnoreRule(['drafts/**', '**/_private']);
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.array(segment, { minLength: 1, maxLength: 3 }), (folder, rest) => {
        const folderPath = `/${folder.join('/')}`.toLowerCase();
        if (ignored(folderPath)) expect(ignored(`${folderPath}/${rest.join('/')}`.toLowerCase())).toBe(true);
      }),
    );
  });
});
