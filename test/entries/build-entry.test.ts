import { describe, expect, it } from 'vitest';
import { buildEntry, buildEntryFromBytes, EntryBuildError, isPostPath, MAX_POST_BYTES, NotAPostError } from '../../src/entries/build-entry.js';

describe('isPostPath', () => {
  it('accepts .md, .markdown and .txt in any case', () => {
    for (const path of ['/a.md', '/posts/b.markdown', '/c.txt', '/D.MD', '/e.Markdown', '/f.TXT']) {
      expect(isPostPath(path), path).toBe(true);
    }
  });

  it('rejects everything else, including extensions only in a folder name', () => {
    for (const path of ['/a.png', '/a.mdx', '/a.md.bak', '/md', '/posts.md/image.jpg', '/a.text', '/']) {
      expect(isPostPath(path), path).toBe(false);
    }
  });
});

describe('buildEntry for Markdown', () => {
  it('renders GFM and takes the title from the first heading', () => {
    const { title, html } = buildEntry({ path: '/Posts/Hello.md', content: '# Hello *world*\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~\n' });
    expect(title).toBe('Hello world');
    expect(html).toContain('<h1>Hello <em>world</em></h1>');
    expect(html).toContain('<table>');
    expect(html).toContain('<del>gone</del>');
  });

  it('takes the plain text of the heading, stripping inline markup and decoding entities', () => {
    const { title } = buildEntry({ path: '/p.md', content: '## Tom &amp; `Jerry` [go](https://x.y) **now** <span>!</span> \\*\n' });
    expect(title).toBe('Tom & Jerry go now ! *');
  });

  it('uses a setext heading', () => {
    expect(buildEntry({ path: '/p.md', content: 'Intro Line\n==========\n\nBody\n' }).title).toBe('Intro Line');
    expect(buildEntry({ path: '/p.md', content: 'Second level\n---\n' }).title).toBe('Second level');
  });

  it('uses the first heading, at any level, even after body text', () => {
    expect(buildEntry({ path: '/p.md', content: 'Some text.\n\n### Third\n\n# First\n' }).title).toBe('Third');
  });

  it('falls back to the file name without extension', () => {
    expect(buildEntry({ path: '/Posts/My Trip.to.Rome.markdown', content: 'No heading here.\n' }).title).toBe('My Trip.to.Rome');
    expect(buildEntry({ path: '/p/Empty Heading.md', content: '#\n\ntext\n' }).title).toBe('Empty Heading');
    expect(buildEntry({ path: '/p/Quoted.md', content: '> # Not mine\n' }).title).toBe('Quoted');
  });

  it('passes raw HTML through (sanitising is the renderer\'s job)', () => {
    expect(buildEntry({ path: '/p.md', content: '<figure><img src="a.png"></figure>\n' }).html).toContain('<figure><img src="a.png"></figure>');
  });

  it('strips a leading UTF-8 BOM so the heading is still recognised', () => {
    const { title, html } = buildEntry({ path: '/p.md', content: '\uFEFF# Title\n\nBody\n' });
    expect(title).toBe('Title');
    expect(html.startsWith('<h1>Title</h1>')).toBe(true);
    expect(html).not.toContain('\uFEFF');
  });
});

describe('buildEntry for plain text', () => {
  it('escapes HTML, including <script>', () => {
    const { html } = buildEntry({ path: '/note.txt', content: '<script>alert("x & y")</script>\n' });
    expect(html).toBe('<p>&lt;script&gt;alert(&quot;x &amp; y&quot;)&lt;/script&gt;</p>\n');
  });

  it('splits paragraphs on blank lines (also whitespace-only and CRLF ones)', () => {
    const { html } = buildEntry({ path: '/note.txt', content: 'one\nstill one\r\n\r\ntwo\n  \t\nthree\n\n\n' });
    expect(html).toBe('<p>one\nstill one</p>\n<p>two</p>\n<p>three</p>\n');
  });

  it('titles by file name, never by a Markdown-looking first line, and strips the BOM', () => {
    const { title, html } = buildEntry({ path: '/Notes/Shopping List.TXT', content: '\uFEFF# not a heading\n' });
    expect(title).toBe('Shopping List');
    expect(html).toBe('<p># not a heading</p>\n');
  });

  it('renders an empty file as empty HTML', () => {
    expect(buildEntry({ path: '/empty.txt', content: '' })).toEqual({ title: 'empty', html: '' });
  });
});

it('refuses a file that is not a post', () => {
  expect(() => buildEntry({ path: '/photo.jpg', content: '' })).toThrow(NotAPostError);
});

describe('posts that cannot become entries', () => {
  it('refuses Markdown nested deeper than the renderer can take with EntryBuildError naming the file, where it used to throw a RangeError', () => {
    const build = () => buildEntry({ path: '/deep.md', content: `${'>'.repeat(3000)} x` });
    expect(build).toThrow(EntryBuildError);
    expect(build).toThrow(/^\/deep\.md cannot become an entry: its Markdown could not be rendered \(Maximum call stack size exceeded\)$/);
    // Nesting a reader could have written still renders.
    expect(buildEntry({ path: '/quote.md', content: `${'>'.repeat(200)} x` }).html).toContain('<blockquote>');
  });

  it('refuses a post over MAX_POST_BYTES before decoding it, and takes one of exactly that size', () => {
    const at = Buffer.alloc(MAX_POST_BYTES, 'a');
    expect(buildEntryFromBytes({ path: '/big.txt', content: at }).html).toHaveLength(MAX_POST_BYTES + '<p></p>\n'.length);
    const over = Buffer.alloc(MAX_POST_BYTES + 1, 'a');
    expect(() => buildEntryFromBytes({ path: '/big.txt', content: over })).toThrow('/big.txt cannot become an entry: it is 4194305 bytes; a post is at most 4194304');
    expect(() => buildEntryFromBytes({ path: '/big.png', content: Buffer.from('x') })).toThrow(NotAPostError);
  });
});
