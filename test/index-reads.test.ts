import { describe, expect, it } from 'vitest';
import { ancestorsOf, chooseIndexRead, readIndex, type ApplyReadState, type IndexRead } from '../src/sync/index-reads.js';
import type { FieldOps } from '../src/sync/plan-changes.js';
import type { ListedEntry, ListedFile, LocalRecord } from '../src/sync/records.js';
import { applyOutcome, randomIndexCase, recordsOutsideFolders, type Index } from './support/index-cases.js';
import { seededRandom } from './support/seeded-random.js';

/**
 * The apply step reads only the part of the index a batch can touch (index-reads.ts, mirrored by
 * apply-load.lua). Whenever the rule says that part is enough, planning on it must give exactly the
 * plan (and the cased entries, and the records of the removals) that the whole index gives.
 */

const CASES = Number(process.env.INDEX_READ_CASES ?? 6000);

const isSubset = <T>(part: ReadonlyMap<string, T>, whole: ReadonlyMap<string, T>) => [...part].every(([key, value]) => whole.get(key) === value);

describe('the targeted index read: random indexes and batches', () => {
  it('gives the same plan as the whole index whenever it is chosen', () => {
    const scopes = { none: 0, whole: 0, targeted: 0 };
    const reasons = new Set<string>();
    let smaller = 0;
    for (let seed = 1; seed <= CASES; seed++) {
      const { state, index } = randomIndexCase(seed);
      expect(recordsOutsideFolders(index.files), `seed ${seed}: the generator keeps records under folders`).toEqual([]);
      const read = chooseIndexRead(state, index);
      scopes[read.scope]++;
      if (read.scope === 'whole') reasons.add(read.reason);
      if (read.scope !== 'targeted') continue;
      const part = readIndex(index, read);
      for (const name of ['files', 'fileIds', 'queue', 'ignored'] as const) expect(isSubset(part[name] as ReadonlyMap<string, unknown>, index[name])).toBe(true);
      if (part.files.size < index.files.size) smaller++;
      expect(applyOutcome(state, part), `seed ${seed}`).toStrictEqual(applyOutcome(state, index));
    }
    // The cases exercise every branch of the rule, and the targeted read often leaves records out.
    expect(scopes.targeted).toBeGreaterThan(CASES * 0.3);
    expect(scopes.none).toBeGreaterThan(0);
    expect([...reasons].sort()).toEqual(['a listed path is a folder in the index', 'full listing', 'ignore rules may have changed']);
    expect(smaller).toBeGreaterThan(scopes.targeted * 0.5);
  });

  // A property that cannot fail proves nothing: leave out any one kind of record the rule reads and
  // some case plans differently.
  const weakenings: [string, (read: Extract<IndexRead, { scope: 'targeted' }>, state: ApplyReadState) => void][] = [
    ['the folders above a listed path', (read, state) => {
      const listed = new Set(state.entries.map((e) => e.pathLower));
      for (const path of read.files) if (!listed.has(path) && state.entries.some((e) => ancestorsOf(e.pathLower).includes(path))) read.files.delete(path);
    }],
    ['the listed paths themselves', (read, state) => {
      for (const entry of state.entries) read.files.delete(entry.pathLower);
    }],
    ['the ids of the records read', (read, state) => {
      const listedIds = new Set(state.entries.flatMap((e) => (e.tag === 'file' ? [e.id] : [])));
      for (const id of read.fileIds) if (!listedIds.has(id)) read.fileIds.delete(id);
    }],
    ['the queue under a listed path', (read, state) => {
      const listed = new Set(state.entries.map((e) => e.pathLower));
      for (const path of read.queue) if (!listed.has(path)) read.queue.delete(path);
    }],
    ['the ignored files under a listed path', (read, state) => {
      const listed = new Set(state.entries.map((e) => e.pathLower));
      for (const path of read.ignored) if (!listed.has(path)) read.ignored.delete(path);
    }],
  ];
  for (const [what, weaken] of weakenings) {
    it(`plans differently somewhere without ${what}`, () => {
      let differs = 0;
      for (let seed = 1; seed <= CASES && differs === 0; seed++) {
        const { state, index } = randomIndexCase(seed);
        const read = chooseIndexRead(state, index);
        if (read.scope !== 'targeted') continue;
        weaken(read, state);
        if (JSON.stringify(applyOutcome(state, readIndex(index, read))) !== JSON.stringify(applyOutcome(state, index))) differs++;
      }
      expect(differs).toBe(1);
    });
  }
});

describe('the targeted index read: examples', () => {
  const folderRecord = (path: string): LocalRecord => ({ kind: 'folder', pathLower: path, pathDisplay: path, id: `id:${path}/` });
  const fileRecord = (path: string, id = `id:${path}`): LocalRecord => ({
    kind: 'file', pathLower: path, pathDisplay: path, id, rev: 'r1', contentHash: 'h1', size: 1, clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z',
  });
  const listedFile = (path: string, opts: { id?: string; hash?: string } = {}): ListedFile => ({
    tag: 'file', pathLower: path, pathDisplay: path, name: path.slice(path.lastIndexOf('/') + 1), id: opts.id ?? `id:${path}`, rev: 'r2', contentHash: opts.hash ?? 'h2', size: 1,
    clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z', isDownloadable: true,
  });
  const deletion = (path: string): ListedEntry => ({ tag: 'deleted', pathLower: path, pathDisplay: path, name: path.slice(path.lastIndexOf('/') + 1) });
  const indexOf = (records: LocalRecord[], extra: Partial<Pick<Index, 'queue' | 'ignored'>> = {}): Index => ({
    files: new Map(records.map((r) => [r.pathLower, r])),
    fileIds: new Map(records.map((r) => [r.id, r.pathLower])),
    queue: extra.queue ?? new Map(),
    ignored: extra.ignored ?? new Map(),
  });
  const state = (entries: ListedEntry[], more: Partial<ApplyReadState> = {}): ApplyReadState => ({
    entries, pageId: 'c1', mode: 'continue', ignoreRules: '[]', ignore: null, ...more,
  });
  /** 1,000 files in 10 folders, and one deep post. */
  const bigIndex = () => indexOf([
    folderRecord('/posts'), folderRecord('/posts/2024'), fileRecord('/posts/2024/a.md'),
    ...Array.from({ length: 10 }, (_, f) => [folderRecord(`/f${f}`), ...Array.from({ length: 100 }, (_, n) => fileRecord(`/f${f}/${n}.md`))]).flat(),
  ]);
  const targeted = (read: IndexRead) => {
    if (read.scope !== 'targeted') throw new Error(`expected a targeted read, got ${JSON.stringify(read)}`);
    return { files: [...read.files].sort(), fileIds: [...read.fileIds].sort(), queue: [...read.queue].sort(), ignored: [...read.ignored].sort() };
  };

  it('a changed file: the file and the folders above it', () => {
    expect(targeted(chooseIndexRead(state([listedFile('/posts/2024/a.md')]), bigIndex()))).toEqual({
      files: ['/posts', '/posts/2024', '/posts/2024/a.md'], fileIds: ['id:/posts/2024/a.md', 'id:/posts/2024/', 'id:/posts/'].sort(), queue: [], ignored: [],
    });
  });

  it('a moved file: its old path (listed as deleted), and the id of what it replaces', () => {
    const index = bigIndex();
    index.files.set('/posts/2024/b.md', fileRecord('/posts/2024/b.md', 'id:old-b'));
    index.fileIds.set('id:old-b', '/posts/2024/b.md');
    const read = targeted(chooseIndexRead(state([deletion('/f3/7.md'), listedFile('/posts/2024/b.md', { id: 'id:/f3/7.md' })]), index));
    expect(read.files).toEqual(['/f3', '/f3/7.md', '/posts', '/posts/2024', '/posts/2024/b.md']);
    expect(read.fileIds).toEqual(['id:/f3/', 'id:/f3/7.md', 'id:/posts/', 'id:/posts/2024/', 'id:old-b']);
  });

  it('a file listed where an ignored folder was: the ignored files under it, which only the ignored hash knows', () => {
    const hidden = (path: string) => { const { kind: _k, ...item } = fileRecord(path) as LocalRecord & { kind: 'file' }; return item; };
    const index = indexOf([folderRecord('/posts')], { ignored: new Map([['/posts/.git/head', hidden('/posts/.git/head')], ['/posts/.gitx', hidden('/posts/.gitx')]]) });
    const entries = [listedFile('/posts/.git')];
    const read = chooseIndexRead(state(entries), index);
    expect(targeted(read).ignored).toEqual(['/posts/.git/head']);
    expect(applyOutcome(state(entries), index).plan.index.ignored.del).toEqual(['/posts/.git/head']);
    expect(applyOutcome(state(entries), readIndex(index, read))).toStrictEqual(applyOutcome(state(entries), index));
  });

  it('reads the whole index for a deleted folder, a file replacing a folder, a full listing, changed ignore rules', () => {
    const whole = (s: ApplyReadState) => { const read = chooseIndexRead(s, bigIndex()); return read.scope === 'whole' ? read.reason : read.scope; };
    expect(whole(state([deletion('/f3')]))).toBe('a listed path is a folder in the index');
    expect(whole(state([listedFile('/f3')]))).toBe('a listed path is a folder in the index');
    expect(whole(state([listedFile('/posts/new.md')], { mode: 'full' }))).toBe('full listing');
    expect(whole(state([listedFile('/posts/new.md')], { ignoreRules: '["drafts"]' }))).toBe('ignore rules may have changed');
    // Same rules written differently: Lua cannot tell, so it reads everything rather than guess.
    expect(whole(state([listedFile('/posts/new.md')], { ignoreRules: '["drafts"]', ignore: '[ "drafts" ]' }))).toBe('ignore rules may have changed');
    expect(whole(state([listedFile('/posts/new.md')], { ignoreRules: '["drafts"]', ignore: '["drafts"]' }))).toBe('targeted');
    expect(whole(state([listedFile('/posts/new.md')], { ignoreRules: null }))).toBe('targeted');
    expect(whole(state([deletion('/f3/1.md')]))).toBe('targeted');
    expect(whole(state([], { pageId: null }))).toBe('none');
    expect(whole(state([listedFile('/posts/new.md'), { tag: 'deleted' } as unknown as ListedEntry]))).toBe('an entry without a path');
  });
});

// ---------- reachable states: a small Dropbox, its journal, the planner committing each batch ----------

type RemoteNode = { kind: 'file'; id: string; rev: string; hash: string } | { kind: 'folder'; id: string };
const POOL: string[] = [];
for (const a of ['a', 'b', '.h']) {
  POOL.push(`/${a}`);
  for (const b of ['a', 'b', '.h']) {
    POOL.push(`/${a}/${b}`);
    for (const c of ['a', 'b']) POOL.push(`/${a}/${b}/${c}`);
  }
}
const isAtOrUnder = (path: string, folder: string) => path === folder || path.startsWith(`${folder}/`);

/** Dropbox, small: a consistent tree and the list entries each change produces. */
class Remote {
  tree = new Map<string, RemoteNode>();
  journal: ListedEntry[] = [];
  private counter = 0;
  constructor(private readonly random: () => number) {}

  private next(prefix: string) { return `${prefix}${++this.counter}`; }
  /** Dropbox's display casing is unreliable for parents: vary it. */
  private display(path: string) { return [...path].map((c) => (this.random() < 0.3 ? c.toUpperCase() : c)).join(''); }
  private entry(path: string): ListedEntry {
    const node = this.tree.get(path)!;
    const pathDisplay = this.display(path);
    const name = pathDisplay.slice(pathDisplay.lastIndexOf('/') + 1);
    return node.kind === 'folder'
      ? { tag: 'folder', pathLower: path, pathDisplay, name, id: node.id }
      : { tag: 'file', pathLower: path, pathDisplay, name, id: node.id, rev: node.rev, contentHash: node.hash, size: 1, clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z', isDownloadable: true };
  }
  private deleted(path: string): ListedEntry {
    const pathDisplay = this.display(path);
    return { tag: 'deleted', pathLower: path, pathDisplay, name: pathDisplay.slice(pathDisplay.lastIndexOf('/') + 1) };
  }
  private canHoldChildren(path: string) { return ancestorsOf(path).every((p) => this.tree.get(p)?.kind !== 'file'); }
  private mkdirs(paths: string[]) {
    for (const p of paths) {
      if (this.tree.has(p)) continue;
      this.tree.set(p, { kind: 'folder', id: this.next('id:') });
      this.journal.push(this.entry(p));
    }
  }
  private subtree(path: string) { return [...this.tree.keys()].filter((p) => isAtOrUnder(p, path)).sort((x, y) => x.split('/').length - y.split('/').length); }

  change() {
    const pick = () => POOL[Math.floor(this.random() * POOL.length)]!;
    const path = pick();
    const roll = this.random();
    const node = this.tree.get(path);
    if (roll < 0.4) { // write
      if (node?.kind === 'folder' || !this.canHoldChildren(path)) return;
      this.mkdirs(ancestorsOf(path));
      this.tree.set(path, { kind: 'file', id: node?.id ?? this.next('id:'), rev: this.next('rev'), hash: `content${Math.floor(this.random() * 3)}` });
      this.journal.push(this.entry(path));
    } else if (roll < 0.5) { // mkdir
      if (node || !this.canHoldChildren(path)) return;
      this.mkdirs([...ancestorsOf(path), path]);
    } else if (roll < 0.7) { // delete (even of nothing: it must be harmless)
      for (const p of this.subtree(path)) this.tree.delete(p);
      this.journal.push(this.deleted(path));
    } else if (roll < 0.9) { // move
      const to = pick();
      if (!node || this.tree.has(to) || isAtOrUnder(to, path) || !this.canHoldChildren(to)) return;
      const moving = this.subtree(path).map((p) => [p, this.tree.get(p)!] as const);
      const deleteFirst = this.random() < 0.5;
      if (deleteFirst) this.journal.push(this.deleted(path));
      for (const [p] of moving) this.tree.delete(p);
      this.mkdirs(ancestorsOf(to));
      for (const [p, moved] of moving) {
        const target = to + p.slice(path.length);
        this.tree.set(target, moved.kind === 'file' && this.random() < 0.3 ? { ...moved, rev: this.next('rev') } : moved);
        this.journal.push(this.entry(target));
      }
      if (!deleteFirst) this.journal.push(this.deleted(path));
    } else if (node?.kind === 'folder') { // a file replaces a folder and its children, with no deletion listed
      for (const p of this.subtree(path)) this.tree.delete(p);
      this.tree.set(path, { kind: 'file', id: this.next('id:'), rev: this.next('rev'), hash: 'content0' });
      this.journal.push(this.entry(path));
    } else if (node?.kind === 'file') {
      this.tree.set(path, { kind: 'folder', id: this.next('id:') });
      this.journal.push(this.entry(path));
    }
  }

  listing(): ListedEntry[] {
    return [...this.tree.keys()].sort((x, y) => x.split('/').length - y.split('/').length || (x < y ? -1 : 1)).map((p) => this.entry(p));
  }

  takeJournal(): ListedEntry[] {
    const journal = this.journal;
    this.journal = [];
    return journal;
  }
}

/** Deletes before sets, per hash: changes-commit.lua. */
function applyOps<T>(map: Map<string, T>, ops: FieldOps<T>): void {
  for (const field of ops.del) map.delete(field);
  for (const [field, value] of ops.set) map.set(field, value);
}

describe('the targeted index read: states the planner reaches', () => {
  const RULES = [[], ['b'], ['**/b']];

  it('gives the same plan as the whole index on every batch, and the planner keeps every record under recorded folders', () => {
    let targetedBatches = 0;
    for (let seed = 1; seed <= Math.ceil(CASES / 10); seed++) {
      const random = seededRandom(seed);
      const remote = new Remote(random);
      const index: Index = { files: new Map(), fileIds: new Map(), ignored: new Map(), queue: new Map() };
      let committedRules: string | null = null;
      let rules = 0;
      for (let round = 0; round < 6; round++) {
        const changes = Math.floor(random() * 6);
        for (let n = 0; n < changes; n++) remote.change();
        const journal = remote.takeJournal();
        if (random() < 0.15) rules = Math.floor(random() * RULES.length);
        const full = round === 0 || random() < 0.1;
        const state: ApplyReadState = {
          entries: full ? remote.listing() : journal, pageId: `c${round}`, mode: full ? 'full' : 'continue',
          ignoreRules: committedRules, ignore: JSON.stringify(RULES[rules]),
        };
        const whole = applyOutcome(state, index);
        const read = chooseIndexRead(state, index);
        if (read.scope === 'targeted') {
          targetedBatches++;
          expect(applyOutcome(state, readIndex(index, read)), `seed ${seed} round ${round}`).toStrictEqual(whole);
        }
        // commit (changes-commit.lua), then maybe download everything queued (download-complete.lua)
        applyOps(index.files, whole.plan.index.files);
        applyOps(index.fileIds, whole.plan.index.fileIds);
        applyOps(index.ignored, whole.plan.index.ignored);
        applyOps(index.queue, whole.plan.index.queue);
        committedRules = JSON.stringify(RULES[rules]);
        expect(recordsOutsideFolders(index.files), `seed ${seed} round ${round}, after the commit`).toEqual([]);
        if (random() < 0.7) {
          for (const [path, queued] of index.queue) {
            const previous = index.files.get(path);
            if (previous && previous.id !== queued.id && index.fileIds.get(previous.id) === path) index.fileIds.delete(previous.id);
            index.files.set(path, { kind: 'file', ...queued });
            index.fileIds.set(queued.id, path);
          }
          index.queue.clear();
          expect(recordsOutsideFolders(index.files), `seed ${seed} round ${round}, after the downloads`).toEqual([]);
        }
      }
    }
    expect(targetedBatches).toBeGreaterThan(CASES / 10);
  });
});
