import { Marked, type Token } from 'marked';

/**
 * Turns a post file into the title and HTML of its entry. Pure: the caller reads the file.
 *
 * Raw HTML inside Markdown is passed through untouched, as blogging platforms do (authors embed
 * videos, figures, footnotes). Sanitising for the page it lands on is the renderer's job, which
 * knows the page's trust model; doing half of it here would only give false comfort.
 */

const MARKDOWN_EXTENSIONS = ['.md', '.markdown'];
const TEXT_EXTENSIONS = ['.txt'];

/** Our own instance, so options or extensions other modules set on the global `marked` don't leak in. */
const markdown = new Marked({ gfm: true, async: false });

/**
 * The largest post made into an entry: rendering runs on the event loop (Markdown at tens of MB/s),
 * and a body past V8's string limit (about 512 MiB) could not even be decoded.
 */
export const MAX_POST_BYTES = 4 * 1024 * 1024;

/**
 * A post that cannot become an entry as it stands: too large, or Markdown the renderer cannot take
 * (nesting a few thousand levels deep overflows its stack). No retry can change that, so the sync
 * sets the file aside (it stays in the mirror) until the file changes, rather than retrying it
 * for good. An EntryBuilder of a host application may throw it for the same reason.
 */
export class EntryBuildError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path} cannot become an entry: ${reason}`);
    this.name = 'EntryBuildError';
  }
}

export class NotAPostError extends Error {
  constructor(readonly path: string) {
    super(`${path} is not a post: only ${[...MARKDOWN_EXTENSIONS, ...TEXT_EXTENSIONS].join(', ')} files become entries`);
    this.name = 'NotAPostError';
  }
}

export function isPostPath(pathLower: string): boolean {
  return kindOf(pathLower) !== undefined;
}

export function buildEntry(file: { path: string; content: string }): { title: string; html: string } {
  const kind = kindOf(file.path);
  if (!kind) throw new NotAPostError(file.path);
  const content = file.content.startsWith('\uFEFF') ? file.content.slice(1) : file.content;
  const fallbackTitle = fileNameWithoutExtension(file.path);

  if (kind === 'text') return { title: fallbackTitle, html: textToHtml(content) };

  try {
    const tokens = markdown.lexer(content);
    return { title: firstHeadingText(tokens) || fallbackTitle, html: markdown.parser(tokens) };
  } catch (error) {
    throw new EntryBuildError(file.path, `its Markdown could not be rendered (${(error as Error).message})`);
  }
}

/** buildEntry of a post's bytes as read from disk, refusing (EntryBuildError) one over MAX_POST_BYTES before decoding it. */
export function buildEntryFromBytes(file: { path: string; content: Buffer }): { title: string; html: string } {
  if (!isPostPath(file.path)) throw new NotAPostError(file.path);
  if (file.content.length > MAX_POST_BYTES) {
    throw new EntryBuildError(file.path, `it is ${file.content.length} bytes; a post is at most ${MAX_POST_BYTES}`);
  }
  return buildEntry({ path: file.path, content: file.content.toString('utf8') });
}

function kindOf(path: string): 'markdown' | 'text' | undefined {
  const lower = path.toLowerCase();
  if (MARKDOWN_EXTENSIONS.some((ext) => lower.endsWith(ext))) return 'markdown';
  if (TEXT_EXTENSIONS.some((ext) => lower.endsWith(ext))) return 'text';
  return undefined;
}

function fileNameWithoutExtension(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  // A name that is all extension (".md") keeps it rather than becoming an empty title.
  return dot > 0 ? name.slice(0, dot) : name;
}

/**
 * Plain text of the first top-level heading (ATX or setext; marked lexes both as `heading`).
 * Headings nested in blockquotes or lists are quotations, not the post's title.
 */
function firstHeadingText(tokens: Token[]): string {
  const heading = tokens.find((token) => token.type === 'heading');
  if (!heading || !('tokens' in heading) || !heading.tokens) return '';
  return decodeEntities(inlineText(heading.tokens)).replace(/\s+/g, ' ').trim();
}

/** Concatenates what a reader sees: text of emphasis, links, code and image alt; drops raw HTML tags. */
function inlineText(tokens: Token[]): string {
  return tokens.map((token) => {
    if (token.type === 'html') return '';
    if ('tokens' in token && token.tokens) return inlineText(token.tokens);
    return 'text' in token && typeof token.text === 'string' ? token.text : '';
  }).join('');
}

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00A0' };

/** Markdown text keeps entities as typed; a title is plain text, so the common ones are decoded. */
function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (entity, body: string) => {
    if (body[0] !== '#') return NAMED_ENTITIES[body.toLowerCase()] ?? entity;
    const codePoint = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
    return codePoint > 0 && codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : entity;
  });
}

/**
 * Plain text has no markup intent, so everything is escaped. Paragraphs are separated by blank
 * lines; single line breaks stay as they are (HTML folds them into spaces), which suits
 * hard-wrapped prose the same way Markdown does.
 */
function textToHtml(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((paragraph) => paragraph.trim())
    .filter((paragraph) => paragraph.length > 0)
    .map((paragraph) => `<p>${escapeHtml(paragraph)}</p>\n`)
    .join('');
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]!);
}
