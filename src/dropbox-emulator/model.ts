import { randomBytes } from 'node:crypto';
import { contentHash } from '../dropbox/content-hash.js';
import type { DeletedMetadata, FileMetadata, FolderMetadata, Metadata } from './metadata.js';
import {
  dropboxTimestamp,
  isSameOrInside,
  joinComponents,
  lowerPath,
  parentPathLower,
  pathComponents,
} from './paths.js';
import { TokenRegistry, type TokenCheck } from './tokens.js';

export type ModelErrorCode = 'not_found' | 'not_file' | 'not_folder' | 'conflict' | 'unknown_account';

/** A lookup or write that Dropbox would refuse; the HTTP layer maps `code` to a 409 body. */
export class ModelError extends Error {
  constructor(
    readonly code: ModelErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ModelError';
  }
}

type FolderNode = { kind: 'folder'; id: string; name: string; pathDisplay: string; pathLower: string };
type FileNode = {
  kind: 'file';
  id: string;
  name: string;
  pathDisplay: string;
  pathLower: string;
  rev: string;
  content: Uint8Array;
  contentHash: string;
  clientModified: string;
  serverModified: string;
};
type TreeNode = FolderNode | FileNode;

/**
 * What is kept of every revision: its metadata, for `rev:` lookups. The bytes are the current
 * node's, or in `superseded` while they fit its budget.
 */
type Revision = Omit<FileNode, 'kind' | 'content'> & { size: number };

/**
 * Bytes of old revisions kept per account by default. The engine downloads `rev:<listed rev>`, so a
 * file saved again between a listing and its download is asked for by an old rev: Dropbox serves
 * it from its history, and so does the emulator while the bytes fit. Past the budget it answers
 * path/not_found, as Dropbox does for a revision no longer in its history (the engine drops the
 * item and the next listing brings the new rev). Without a bound a demo file saved 1,000 times
 * would be held 1,000 times.
 */
export const DEFAULT_SUPERSEDED_REVISION_BYTES = 16 * 1024 * 1024;

export type JournalEntry = { seq: number; metadata: Metadata };

/** One row of `listTree`, shaped for comparing with what a sync engine wrote to disk. */
export type TreeItem = {
  pathDisplay: string;
  pathLower: string;
  kind: 'file' | 'folder';
  content?: Uint8Array;
  clientModified?: string;
  contentHash?: string;
  id: string;
  rev?: string;
};

export type ResolvedFile = { metadata: FileMetadata; content: Uint8Array };

type AccountState = {
  tree: Map<string, TreeNode>;
  revisions: Map<string, Revision>;
  /** Bytes of revisions overwritten or deleted, by rev, oldest first; at most the model's budget in total. */
  superseded: Map<string, Uint8Array>;
  supersededBytes: number;
  journal: JournalEntry[];
  /**
   * What used to exist and does not now, by path_lower: a deleted node, a moved one's old path. What
   * `list_folder` with `include_deleted` adds; a node created at the path again takes it out.
   */
  deleted: Map<string, DeletedMetadata>;
  /** Bumped by `reset`; cursors carry the generation they were issued in. */
  generation: number;
};

export type AccountCredentials = { accessToken: string; refreshToken?: string };

/** `dbid:` + 43 url-safe characters, the shape of real API v2 account ids. */
export function randomAccountId(): string {
  return 'dbid:AA' + randomBytes(31).toString('base64url').slice(0, 41);
}

let revisionCounter = 0;
function nextRev(): string {
  revisionCounter += 1;
  return randomBytes(4).toString('hex') + revisionCounter.toString(16).padStart(9, '0');
}

function newId(): string {
  return 'id:' + randomBytes(16).toString('base64url');
}

function toMetadata(node: TreeNode): FileMetadata | FolderMetadata {
  if (node.kind === 'folder') {
    return { '.tag': 'folder', name: node.name, path_lower: node.pathLower, path_display: node.pathDisplay, id: node.id };
  }
  return fileMetadata(node, node.content.length);
}

function fileMetadata(node: Omit<Revision, 'size'>, size: number): FileMetadata {
  return {
    '.tag': 'file',
    name: node.name,
    path_lower: node.pathLower,
    path_display: node.pathDisplay,
    id: node.id,
    client_modified: node.clientModified,
    server_modified: node.serverModified,
    rev: node.rev,
    size,
    is_downloadable: true,
    content_hash: node.contentHash,
  };
}

function byPath(a: { pathLower: string }, b: { pathLower: string }): number {
  // Plain string order puts every folder before its children, because a parent is a prefix of them.
  return a.pathLower < b.pathLower ? -1 : a.pathLower > b.pathLower ? 1 : 0;
}

/**
 * An in-memory Dropbox: per account a case-insensitive tree, every revision's metadata and the bytes
 * of the current ones and of the newest old ones (a bounded budget), and an append-only
 * journal of changes that cursors point into. Mutations are synchronous so tests can reason about order.
 */
export class DropboxModel {
  /** Names this model in its cursors (cursor.ts): a cursor of another one is reset. */
  readonly epoch = randomBytes(6).toString('base64url');
  private readonly accounts = new Map<string, AccountState>();
  private readonly changeListeners = new Set<(accountId: string) => void>();
  readonly tokens: TokenRegistry;
  private readonly supersededBudget: number;

  /** `supersededRevisionBytes`: old revisions' bytes kept per account (default DEFAULT_SUPERSEDED_REVISION_BYTES). */
  constructor(options: { accessTokenLifetimeSeconds?: number; supersededRevisionBytes?: number } = {}) {
    this.tokens = new TokenRegistry(options.accessTokenLifetimeSeconds ?? 14_400);
    this.supersededBudget = options.supersededRevisionBytes ?? DEFAULT_SUPERSEDED_REVISION_BYTES;
  }

  addAccount(accountId: string, credentials: AccountCredentials): void {
    if (this.accounts.has(accountId)) throw new ModelError('conflict', `account ${accountId} already exists`);
    this.accounts.set(accountId, { tree: new Map(), revisions: new Map(), superseded: new Map(), supersededBytes: 0, journal: [], deleted: new Map(), generation: 0 });
    this.tokens.registerAccessToken(accountId, credentials.accessToken);
    if (credentials.refreshToken !== undefined) this.tokens.registerRefreshToken(accountId, credentials.refreshToken);
  }

  hasAccount(accountId: string): boolean {
    return this.accounts.has(accountId);
  }

  accountIds(): string[] {
    return [...this.accounts.keys()];
  }

  authenticate(accessToken: string): TokenCheck {
    return this.tokens.check(accessToken);
  }

  expireAccessToken(accountId: string): void {
    this.account(accountId);
    this.tokens.expireAccessTokens(accountId);
  }

  /** Called after every change that lands in an account's journal (and after `reset`). */
  onChange(listener: (accountId: string) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * `parentsAsGiven`: the file's `path_display` keeps the casing `path` gives its parent folders,
   * not the folders' own, as real Dropbox often does: only the last component's casing is
   * guaranteed (dropbox-api.md, section 6). Its folders are the existing ones all the same.
   */
  writeFile(
    accountId: string,
    path: string,
    content: string | Uint8Array,
    options: { clientModified?: Date; parentsAsGiven?: boolean } = {},
  ): FileMetadata {
    const state = this.account(accountId);
    const parts = this.nonRootComponents(path);
    const folderDisplay = this.ensureFolders(state, parts.slice(0, -1));
    const parentDisplay = options.parentsAsGiven ? joinComponents(parts.slice(0, -1)) : folderDisplay;
    const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : Uint8Array.from(content);
    const pathLower = lowerPath(joinComponents(parts));
    const existing = state.tree.get(pathLower);
    if (existing?.kind === 'folder') throw new ModelError('conflict', `${path} is a folder`);
    const now = new Date();
    const name = existing?.name ?? parts[parts.length - 1]!;
    const node: FileNode = {
      kind: 'file',
      id: existing?.id ?? newId(),
      name,
      pathDisplay: `${parentDisplay}/${name}`,
      pathLower,
      rev: nextRev(),
      content: bytes,
      contentHash: contentHash(bytes),
      clientModified: dropboxTimestamp(options.clientModified ?? now),
      serverModified: dropboxTimestamp(now),
    };
    if (existing?.kind === 'file') this.supersede(state, existing);
    state.tree.set(pathLower, node);
    state.deleted.delete(pathLower);
    const { kind: _kind, content: _content, ...revision } = node;
    state.revisions.set(node.rev, { ...revision, size: bytes.length });
    const metadata = toMetadata(node) as FileMetadata;
    this.append(state, metadata);
    this.notify(accountId);
    return metadata;
  }

  mkdir(accountId: string, path: string): FolderMetadata {
    const state = this.account(accountId);
    const parts = this.nonRootComponents(path);
    this.ensureFolders(state, parts);
    this.notify(accountId);
    return toMetadata(state.tree.get(lowerPath(joinComponents(parts)))!) as FolderMetadata;
  }

  /** One `deleted` journal entry for the path; a folder's children are implied, as on Dropbox. */
  remove(accountId: string, path: string): void {
    const state = this.account(accountId);
    const node = this.existingNode(state, path);
    for (const [key, gone] of [...state.tree]) {
      if (!isSameOrInside(key, node.pathLower)) continue;
      state.tree.delete(key);
      if (gone.kind === 'file') this.supersede(state, gone);
    }
    state.deleted.set(node.pathLower, deletedMetadata(node));
    this.append(state, deletedMetadata(node));
    this.notify(accountId);
  }

  /** A deleted entry at the old path, then the new path and its whole subtree with the same ids. */
  move(accountId: string, from: string, to: string): void {
    const state = this.account(accountId);
    const node = this.existingNode(state, from);
    const toParts = this.nonRootComponents(to);
    const toLower = lowerPath(joinComponents(toParts));
    if (isSameOrInside(toLower, node.pathLower) && toLower !== node.pathLower) {
      throw new ModelError('conflict', `cannot move ${from} into itself`);
    }
    const caseOnly = toLower === node.pathLower;
    if (!caseOnly && state.tree.has(toLower)) throw new ModelError('conflict', `${to} already exists`);
    const parentDisplay = caseOnly
      ? node.pathDisplay.slice(0, node.pathDisplay.lastIndexOf('/'))
      : this.ensureFolders(state, toParts.slice(0, -1));
    const newName = toParts[toParts.length - 1]!;
    const newDisplay = `${parentDisplay}/${newName}`;
    const moved = [...state.tree.values()].filter((n) => isSameOrInside(n.pathLower, node.pathLower)).sort(byPath);
    for (const n of moved) state.tree.delete(n.pathLower);
    const relocated = moved.map((n): TreeNode => {
      const suffixDisplay = n.pathDisplay.slice(node.pathDisplay.length);
      const suffixLower = n.pathLower.slice(node.pathLower.length);
      const name = n === node ? newName : n.name;
      return { ...n, name, pathDisplay: newDisplay + suffixDisplay, pathLower: toLower + suffixLower };
    });
    for (const n of relocated) {
      state.tree.set(n.pathLower, n);
      state.deleted.delete(n.pathLower);
    }
    // Dropbox does not report case-only renames through list_folder/continue.
    if (!caseOnly) {
      state.deleted.set(node.pathLower, deletedMetadata(node));
      this.append(state, deletedMetadata(node));
      for (const n of relocated) this.append(state, toMetadata(n));
    }
    this.notify(accountId);
  }

  /** Invalidates every cursor of the account: the next continue answers 409 reset. */
  reset(accountId: string): void {
    this.account(accountId).generation += 1;
    this.notify(accountId);
  }

  listTree(accountId: string): TreeItem[] {
    const state = this.account(accountId);
    return [...state.tree.values()].sort(byPath).map((node) =>
      node.kind === 'folder'
        ? { pathDisplay: node.pathDisplay, pathLower: node.pathLower, kind: 'folder', id: node.id }
        : {
            pathDisplay: node.pathDisplay,
            pathLower: node.pathLower,
            kind: 'file',
            content: node.content,
            clientModified: node.clientModified,
            contentHash: node.contentHash,
            id: node.id,
            rev: node.rev,
          },
    );
  }

  /**
   * The file bytes the account holds: `current` for the files in its tree, `superseded` for old
   * revisions still downloadable (at most the budget; see DEFAULT_SUPERSEDED_REVISION_BYTES).
   */
  contentBytes(accountId: string): { current: number; superseded: number } {
    const state = this.account(accountId);
    let current = 0;
    for (const node of state.tree.values()) if (node.kind === 'file') current += node.content.length;
    return { current, superseded: state.supersededBytes };
  }

  // ---- Queries used by the HTTP routes ----

  generation(accountId: string): number {
    return this.account(accountId).generation;
  }

  /** The sequence number of the last journal entry (0 when empty). */
  journalPosition(accountId: string): number {
    return this.account(accountId).journal.length;
  }

  journalAfter(accountId: string, position: number): readonly JournalEntry[] {
    return this.account(accountId).journal.slice(position);
  }

  /**
   * Rewrites the journal after `position` (reorders or leaves out entries), for the listings real
   * Dropbox may give and this model never would on its own: the new path of a move before the
   * deletion of its old one, a file that became a folder with no `deleted` entry in between, a
   * child before its folder (dropbox-api.md, sections 2.2 and 6: "do not assume the delete comes
   * first"). The tree is unchanged, so what a listing ends with still describes it. Cursors at or
   * before `position` read the rewritten entries.
   */
  rewriteJournal(accountId: string, position: number, rewrite: (metadata: readonly Metadata[]) => readonly Metadata[]): void {
    const state = this.account(accountId);
    const rewritten = rewrite(state.journal.slice(position).map((entry) => entry.metadata));
    state.journal.length = position;
    for (const metadata of rewritten) this.append(state, metadata);
    this.notify(accountId);
  }

  /** Metadata for `/path`, `id:…` or `rev:…` (a rev answers with that revision's metadata). */
  metadataOf(accountId: string, readPath: string): FileMetadata | FolderMetadata {
    const state = this.account(accountId);
    if (readPath.startsWith('rev:')) return this.revisionAt(state, readPath.slice(4)).metadata;
    return toMetadata(this.resolveNode(state, readPath));
  }

  /** The folder a listing is scoped to: "" for the root, else the folder's path_lower. */
  folderScope(accountId: string, path: string): string {
    if (path === '') return '';
    const node = this.resolveNode(this.account(accountId), path);
    if (node.kind !== 'folder') throw new ModelError('not_folder', `${path} is not a folder`);
    return node.pathLower;
  }

  folderExists(accountId: string, pathLower: string): boolean {
    return pathLower === '' || this.account(accountId).tree.get(pathLower)?.kind === 'folder';
  }

  /**
   * The current tree under a folder, parents before children, so applying it in order rebuilds it;
   * with `includeDeleted`, also a `deleted` entry for each path there that used to exist and does
   * not now (a deleted file or folder, a moved one's old path), as list_folder's include_deleted.
   */
  snapshot(accountId: string, scopeLower: string, recursive: boolean, includeDeleted = false): Metadata[] {
    const state = this.account(accountId);
    const inScope = (pathLower: string) =>
      recursive ? isSameOrInside(pathLower, scopeLower) : pathLower === scopeLower || parentPathLower(pathLower) === scopeLower;
    const live = [...state.tree.values()].filter((node) => inScope(node.pathLower)).sort(byPath).map(toMetadata);
    if (!includeDeleted) return live;
    const gone = [...state.deleted.values()].filter((entry) => inScope(entry.path_lower));
    const order = (a: Metadata, b: Metadata) => (a.path_lower < b.path_lower ? -1 : a.path_lower > b.path_lower ? 1 : 0);
    return [...live, ...gone].sort(order);
  }

  readFile(accountId: string, readPath: string): ResolvedFile {
    const state = this.account(accountId);
    if (readPath.startsWith('rev:')) return this.revisionFile(state, readPath.slice(4));
    const node = this.resolveNode(state, readPath);
    if (node.kind !== 'file') throw new ModelError('not_file', `${readPath} is a folder`);
    return { metadata: toMetadata(node) as FileMetadata, content: node.content };
  }

  // ---- internals ----

  private account(accountId: string): AccountState {
    const state = this.accounts.get(accountId);
    if (!state) throw new ModelError('unknown_account', `no account ${accountId}`);
    return state;
  }

  private nonRootComponents(path: string): string[] {
    const parts = pathComponents(path);
    if (parts.length === 0) throw new ModelError('conflict', 'the root cannot be written');
    return parts;
  }

  private resolveNode(state: AccountState, readPath: string): TreeNode {
    if (readPath.startsWith('id:')) {
      for (const node of state.tree.values()) if (node.id === readPath) return node;
      throw new ModelError('not_found', `${readPath} not found`);
    }
    const node = state.tree.get(lowerPath(joinComponents(pathComponents(readPath))));
    if (!node) throw new ModelError('not_found', `${readPath} not found`);
    return node;
  }

  private existingNode(state: AccountState, path: string): TreeNode {
    if (pathComponents(path).length === 0) throw new ModelError('conflict', 'the root cannot be changed');
    return this.resolveNode(state, path);
  }

  /** A revision's metadata, and its current node when the file still exists. */
  private revisionAt(state: AccountState, rev: string): { metadata: FileMetadata; current: TreeNode | undefined } {
    const revision = state.revisions.get(rev);
    if (!revision) throw new ModelError('not_found', `rev ${rev} not found`);
    // A moved file's old revision answers with its current path, like Dropbox does for the same id.
    // Most revisions are still where they were written: look there before scanning the whole tree
    // (a scan per download made serving 10,000 files quadratic).
    const atOwnPath = state.tree.get(revision.pathLower);
    const current = atOwnPath?.id === revision.id ? atOwnPath : [...state.tree.values()].find((n) => n.id === revision.id);
    const located = current ? { name: current.name, pathDisplay: current.pathDisplay, pathLower: current.pathLower } : {};
    return { metadata: fileMetadata({ ...revision, ...located }, revision.size), current };
  }

  private revisionFile(state: AccountState, rev: string): ResolvedFile {
    const { metadata, current } = this.revisionAt(state, rev);
    const content = current?.kind === 'file' && current.rev === rev ? current.content : state.superseded.get(rev);
    if (!content) throw new ModelError('not_found', `rev ${rev} is no longer kept`);
    return { metadata, content };
  }

  /** Keeps an overwritten or deleted revision's bytes downloadable, dropping the oldest past the budget. */
  private supersede(state: AccountState, node: FileNode): void {
    state.superseded.set(node.rev, node.content);
    state.supersededBytes += node.content.length;
    for (const [rev, bytes] of state.superseded) {
      if (state.supersededBytes <= this.supersededBudget) break;
      state.superseded.delete(rev);
      state.supersededBytes -= bytes.length;
    }
  }

  /** Creates missing folders along `parts` (journaling each) and returns the display path they form. */
  private ensureFolders(state: AccountState, parts: readonly string[]): string {
    let display = '';
    for (let i = 0; i < parts.length; i++) {
      const pathLower = lowerPath(joinComponents(parts.slice(0, i + 1)));
      const existing = state.tree.get(pathLower);
      if (existing?.kind === 'file') throw new ModelError('conflict', `${existing.pathDisplay} is a file`);
      if (existing) {
        display = existing.pathDisplay;
        continue;
      }
      const name = parts[i]!;
      const folder: FolderNode = { kind: 'folder', id: newId(), name, pathDisplay: `${display}/${name}`, pathLower };
      state.tree.set(pathLower, folder);
      state.deleted.delete(pathLower);
      this.append(state, toMetadata(folder));
      display = folder.pathDisplay;
    }
    return display;
  }

  private append(state: AccountState, metadata: Metadata): void {
    state.journal.push({ seq: state.journal.length + 1, metadata });
  }

  private notify(accountId: string): void {
    for (const listener of this.changeListeners) listener(accountId);
  }
}

function deletedMetadata(node: TreeNode): DeletedMetadata {
  return { '.tag': 'deleted', name: node.name, path_lower: node.pathLower, path_display: node.pathDisplay };
}
