import type { ListedEntry, LocalRecord } from './records.js';
import { parentPathLower } from './paths.js';

/**
 * Dropbox only guarantees the casing of the last component of `path_display`: "in practice, casing
 * of parent directories is often incorrect" (Maestral). Writing `/photos/b.jpg` next to an existing
 * `/Photos` folder would create a second folder on a case-sensitive disk. So each entry's parent
 * part is taken from the casing the mirror already uses for that parent (the index, or an earlier
 * entry of the batch), and only its own name from Dropbox. A folder that already exists locally
 * keeps its local casing (Dropbox does not report case-only renames).
 */
export function withLocalCasing(entries: readonly ListedEntry[], files: ReadonlyMap<string, LocalRecord>): ListedEntry[] {
  const known = new Map<string, string>();
  const displayOf = (pathLower: string) => known.get(pathLower) ?? files.get(pathLower)?.pathDisplay;
  return entries.map((entry) => {
    const name = entry.pathDisplay.slice(entry.pathDisplay.lastIndexOf('/') + 1);
    const parent = parentPathLower(entry.pathLower);
    const parentDisplay = parent === '' || parent === '/' ? '' : displayOf(parent);
    let pathDisplay = parentDisplay === undefined ? entry.pathDisplay : `${parentDisplay}/${name}`;
    if (entry.tag === 'deleted') {
      known.delete(entry.pathLower);
      return pathDisplay === entry.pathDisplay ? entry : { ...entry, pathDisplay };
    }
    const local = files.get(entry.pathLower);
    if (entry.tag === 'folder' && local?.kind === 'folder' && !known.has(entry.pathLower)) pathDisplay = local.pathDisplay;
    known.set(entry.pathLower, pathDisplay);
    return pathDisplay === entry.pathDisplay ? entry : { ...entry, pathDisplay };
  });
}
