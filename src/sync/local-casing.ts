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
  /**
   * Casings the batch gave, each with the position of the entry that gave it: a deletion of the path
   * or of a folder above it later in the batch (a file listed where a folder was deletes it too)
   * makes it stale, for the path and everything under it.
   */
  const known = new Map<string, { display: string; at: number }>();
  /** The casing each folder got where the batch listed it: listed again, it keeps it (one folder on disk). */
  const listedFolders = new Map<string, { display: string; at: number }>();
  /** Each path's latest deletion in the batch, by position. */
  const deletedAt = new Map<string, number>();
  /** Whether the batch, after position `since`, deleted this path or a folder above it (one look-up per level). */
  const deletedSince = (pathLower: string, since: number): boolean => {
    if (deletedAt.size === 0) return false;
    for (let slash = pathLower.indexOf('/', 1); ; slash = pathLower.indexOf('/', slash + 1)) {
      if ((deletedAt.get(slash === -1 ? pathLower : pathLower.slice(0, slash)) ?? -1) > since) return true;
      if (slash === -1) return false;
    }
  };
  const current = (casings: Map<string, { display: string; at: number }>, pathLower: string): string | undefined => {
    const casing = casings.get(pathLower);
    return casing && !deletedSince(pathLower, casing.at) ? casing.display : undefined;
  };
  const displayOf = (pathLower: string) => current(known, pathLower) ?? (deletedSince(pathLower, -1) ? undefined : files.get(pathLower)?.pathDisplay);
  return entries.map((entry, at) => {
    const name = entry.pathDisplay.slice(entry.pathDisplay.lastIndexOf('/') + 1);
    const parent = parentPathLower(entry.pathLower);
    const parentDisplay = parent === '' || parent === '/' ? '' : displayOf(parent);
    let pathDisplay = parentDisplay === undefined ? entry.pathDisplay : `${parentDisplay}/${name}`;
    if (entry.tag === 'deleted') {
      deletedAt.set(entry.pathLower, at);
      return pathDisplay === entry.pathDisplay ? entry : { ...entry, pathDisplay };
    }
    if (entry.tag === 'folder') {
      const local = files.get(entry.pathLower);
      const earlier = current(listedFolders, entry.pathLower);
      if (earlier !== undefined) pathDisplay = earlier;
      else if (local?.kind === 'folder' && !deletedSince(entry.pathLower, -1)) pathDisplay = local.pathDisplay;
      listedFolders.set(entry.pathLower, { display: pathDisplay, at });
    } else {
      // A file where a folder was: the folder and what was under it are gone. Dated just before
      // this entry, so what the batch listed earlier under the path is stale and the file's own
      // casing, recorded below at `at`, is not.
      listedFolders.delete(entry.pathLower);
      deletedAt.set(entry.pathLower, at - 0.5);
    }
    known.set(entry.pathLower, { display: pathDisplay, at });
    return pathDisplay === entry.pathDisplay ? entry : { ...entry, pathDisplay };
  });
}
