import { ancestorsOf, type ApplyReadState, type IndexView } from '../../src/sync/index-reads.js';
import { planBatch } from '../../src/sync/apply-changes.js';
import { UNLISTED_ID, type Plan } from '../../src/sync/plan-changes.js';
import { seededRandom } from './seeded-random.js';
import type { DownloadItem, ListedEntry, LocalRecord } from '../../src/sync/records.js';

/**
 * Random local indexes and batches for the apply step's targeted read, from a seed: the pure
 * property test and the test against real Redis run the very same cases.
 */


export interface Index {
  files: Map<string, LocalRecord>;
  fileIds: Map<string, string>;
  ignored: Map<string, DownloadItem>;
  queue: Map<string, DownloadItem>;
}

export interface IndexCase {
  seed: number;
  state: ApplyReadState;
  index: Index;
}

const SEGMENTS = ['a', 'b', 'ü', '.h', 'x y'];
const NORMAL_PATHS: string[] = [];
for (const s1 of SEGMENTS) {
  NORMAL_PATHS.push(`/${s1}`);
  for (const s2 of SEGMENTS) {
    NORMAL_PATHS.push(`/${s1}/${s2}`);
    for (const s3 of SEGMENTS.slice(0, 3)) NORMAL_PATHS.push(`/${s1}/${s2}/${s3}`);
  }
}
/** Paths no real listing has, which a hostile one might: the rule must not trip over them. */
const ODD_PATHS = ['', '/', 'a/b', '/a//b', '/a/', '/A/b', '/a/b/ü/a'];
const PATTERN_SETS: string[][] = [[], ['b'], ['**/ü'], ['a/b/**'], ['*.x', 'x y']];

export const ACCOUNT_ROOT = '/data/acct';

export function randomIndexCase(seed: number): IndexCase {
  const random = seededRandom(seed);
  const chance = (p: number) => random() < p;
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const anyPath = () => (chance(0.06) ? pick(ODD_PATHS) : pick(NORMAL_PATHS));
  const display = (pathLower: string) => [...pathLower].map((c) => (chance(0.3) ? c.toUpperCase() : c)).join('');
  const id = () => `id:${int(0, 14)}`;
  const hash = () => `hash${int(0, 2)}`;
  const item = (pathLower: string, itemId = id()): DownloadItem => ({
    pathLower, pathDisplay: display(pathLower), id: itemId, rev: `rev${int(0, 3)}`, contentHash: hash(), size: int(0, 3),
    clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z',
  });

  // files: every record's ancestors are folders in it (what the planner keeps, and the targeted read relies on).
  const chosen = new Map<string, 'file' | 'folder'>();
  for (let n = int(0, 12); n > 0; n--) chosen.set(anyPath(), chance(0.6) ? 'file' : 'folder');
  for (const path of [...chosen.keys()]) for (const ancestor of ancestorsOf(path)) chosen.set(ancestor, 'folder');
  const files = new Map<string, LocalRecord>();
  const shuffled = [...chosen];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  for (const [path, kind] of shuffled) {
    files.set(path, kind === 'file'
      ? { kind: 'file', ...item(path, chance(0.5) ? `id:${path}` : id()) }
      : { kind: 'folder', pathLower: path, pathDisplay: display(path), id: chance(0.2) ? `${UNLISTED_ID}${path}` : chance(0.5) ? `id:${path}/` : id() });
  }
  const fileIds = new Map<string, string>();
  for (const record of files.values()) if (chance(0.85)) fileIds.set(record.id, record.pathLower);
  for (let n = int(0, 3); n > 0; n--) fileIds.set(id(), anyPath()); // stale ids
  // queue and ignored: anywhere, even where files has nothing or a file above them.
  const queue = new Map<string, DownloadItem>();
  for (let n = int(0, 4); n > 0; n--) { const path = anyPath(); queue.set(path, item(path)); }
  const ignored = new Map<string, DownloadItem>();
  for (let n = int(0, 4); n > 0; n--) { const path = anyPath(); ignored.set(path, item(path)); }

  // The batch: mostly about what the index knows (replacing, moving, deleting it), some of it new.
  const known = [...files.keys(), ...queue.keys(), ...ignored.keys()];
  const fileRecords = [...files.values()].filter((record) => record.kind === 'file');
  const entryPath = () => {
    if (known.length && chance(0.5)) {
      const base = pick(known);
      return chance(0.3) ? `${base}/${pick(SEGMENTS)}` : base;
    }
    return anyPath();
  };
  const entries: ListedEntry[] = [];
  for (let n = int(0, 8); n > 0; n--) {
    const pathLower = entryPath();
    const pathDisplay = display(pathLower);
    const name = pathDisplay.slice(pathDisplay.lastIndexOf('/') + 1);
    const roll = random();
    if (roll < 0.35) entries.push({ tag: 'deleted', pathLower, pathDisplay, name });
    else if (roll < 0.55) entries.push({ tag: 'folder', pathLower, pathDisplay, name, id: chance(0.5) ? `id:${pathLower}/` : id() });
    else {
      const local = files.get(pathLower);
      const movedFrom = fileRecords.length && chance(0.3) ? pick(fileRecords) : undefined;
      const fileId = movedFrom?.id ?? (local && chance(0.5) ? local.id : id());
      const contentHash = movedFrom?.kind === 'file' && chance(0.6) ? movedFrom.contentHash : local?.kind === 'file' && chance(0.6) ? local.contentHash : hash();
      entries.push({
        tag: 'file', pathLower, pathDisplay, name, id: fileId, rev: `rev${int(0, 3)}`, contentHash, size: int(0, 3),
        clientModified: '2024-01-01T00:00:00Z', serverModified: '2024-01-01T00:00:00Z', isDownloadable: chance(0.9),
      });
    }
  }

  const patterns = pick(PATTERN_SETS);
  const canonical = JSON.stringify(patterns);
  const rulesRoll = random();
  const ignore = patterns.length === 0 && chance(0.5) ? null : rulesRoll > 0.9 ? JSON.stringify(patterns, null, 1) : canonical; // a hand-written field now and then
  const ignoreRules = rulesRoll < 0.25 ? null : rulesRoll < 0.82 ? canonical : rulesRoll < 0.9 ? JSON.stringify(pick(PATTERN_SETS)) : canonical;
  return {
    seed,
    state: {
      entries,
      pageId: chance(0.06) ? null : `cursor-${seed}`,
      mode: chance(0.1) ? 'full' : chance(0.8) ? 'continue' : null,
      ignoreRules,
      ignore,
    },
    index: { files, fileIds, ignored, queue },
  };
}

export interface ApplyOutcome {
  entries: ListedEntry[];
  plan: Plan;
  /** What apply-changes.ts reads from the index for each removal. */
  removedRecords: (LocalRecord | undefined)[];
}

/** What apply-changes.ts computes from a batch and (part of) an index: the cased entries, the plan, the records of the removals. */
export function applyOutcome(state: ApplyReadState, index: IndexView): ApplyOutcome {
  const patterns = state.ignore ? (JSON.parse(state.ignore) as string[]) : [];
  const batch = { entries: [...state.entries], mode: state.mode === 'full' ? ('full' as const) : ('continue' as const), ignoreRules: state.ignoreRules };
  const { entries, plan } = planBatch(batch, index, patterns, ACCOUNT_ROOT);
  return { entries, plan, removedRecords: plan.removals.map((path) => index.files.get(path)) };
}

/** The records of `files` whose folders above are not all folder records of `files` (none, in an index the planner keeps). */
export function recordsOutsideFolders(files: ReadonlyMap<string, LocalRecord>): string[] {
  return [...files.keys()].filter((path) => ancestorsOf(path).some((ancestor) => files.get(ancestor)?.kind !== 'folder'));
}
