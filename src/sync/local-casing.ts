import type { ListedEntry, LocalRecord } from './records.js';
import { parentPathLower } from './paths.js';

/**
 * Dropbox only guarantees the casing of the last component of `path_display`: "in practice, casing
 * of parent directories is often incorrect" (Maestral). Writing `/photos/b.jpg` next to an existing
 * `/Photos` folder would create a second folder on a case-sensitive disk. So each entry's parent
 * part is taken from the casing the mirror already uses for that parent (the index, or an earlier
 * entry of the batch), and only its own name from Dropbox. A folder that already exists locally
 * keeps its local casing (Dropbox does not report case-only renames), unless the batch deleted it
 * (or a folder above it) before listing it again: the planner removes it and makes it anew, so it
 * takes the name Dropbox gives it (a case-only rename through a temporary name), and so does what
 * is listed in it. A folder the batch lists twice keeps the casing it got the first time.
 */
export function withLocalCasing(entries: readonly ListedEntry[], files: ReadonlyMap<string, LocalRecord>): ListedEntry[] {
  const known = new Map<string, string>();
  const deleted = new Set<string>();
  /** The casing each folder got where the batch listed it: listed again, it keeps it (one folder on disk). */
  const listedFolders = new Map<string, string>();
  /** Whether the batch so far deleted this path or a folder above it (one look-up per level, not per deletion). */
  const deletedAtOrAbove = (pathLower: string): boolean => {
    if (deleted.size === 0) return false;
    for (let slash = pathLower.indexOf('/', 1); ; slash = pathLower.indexOf('/', slash + 1)) {
      if (deleted.has(slash === -1 ? pathLower : pathLower.slice(0, slash))) return true;
      if (slash === -1) return false;
    }
  };
  const displayOf = (pathLower: string) => known.get(pathLower) ?? (deletedAtOrAbove(pathLower) ? undefined : files.get(pathLower)?.pathDisplay);
  return entries.map((entry) => {
    const name = entry.pathDisplay.slice(entry.pathDisplay.lastIndexOf('/') + 1);
    const parent = parentPathLower(entry.pathLower);
    const parentDisplay = parent === '' || parent === '/' ? '' : displayOf(parent);
    let pathDisplay = parentDisplay === undefined ? entry.pathDisplay : `${parentDisplay}/${name}`;
    if (entry.tag === 'deleted') {
      known.delete(entry.pathLower);
      listedFolders.delete(entry.pathLower);
      deleted.add(entry.pathLower);
      return pathDisplay === entry.pathDisplay ? entry : { ...entry, pathDisplay };
    }
    if (entry.tag === 'folder') {
      const local = files.get(entry.pathLower);
      const earlier = listedFolders.get(entry.pathLower);
      if (earlier !== undefined) pathDisplay = earlier;
      else if (local?.kind === 'folder' && !deletedAtOrAbove(entry.pathLower)) pathDisplay = local.pathDisplay;
      listedFolders.set(entry.pathLower, pathDisplay);
    } else listedFolders.delete(entry.pathLower);
    known.set(entry.pathLower, pathDisplay);
    return pathDisplay === entry.pathDisplay ? entry : { ...entry, pathDisplay };
  });
}
