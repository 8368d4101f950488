import type { files } from 'dropbox';

/**
 * The engine's own, small shapes for what Dropbox lists and what is on disk. Everything is keyed on
 * Dropbox's `path_lower` (Dropbox is case-insensitive); names on disk come from `path_display`.
 */
export interface ListedFile {
  tag: 'file';
  pathLower: string;
  pathDisplay: string;
  name: string;
  id: string;
  rev: string;
  contentHash: string;
  size: number;
  clientModified: string;
  serverModified: string;
  isDownloadable: boolean;
}

export interface ListedFolder {
  tag: 'folder';
  pathLower: string;
  pathDisplay: string;
  name: string;
  id: string;
}

export interface ListedDeletion {
  tag: 'deleted';
  pathLower: string;
  pathDisplay: string;
  name: string;
}

export type ListedEntry = ListedFile | ListedFolder | ListedDeletion;

/** A queued download: the listed file plus the display path it will have on disk. */
export type DownloadItem = Omit<ListedFile, 'tag' | 'isDownloadable' | 'name'>;

/** What the mirror holds at a path (the `files` index). */
export type LocalRecord =
  | ({ kind: 'file' } & DownloadItem)
  | { kind: 'folder'; pathLower: string; pathDisplay: string; id: string };

export class MalformedEntryError extends Error {
  constructor(readonly entry: unknown, reason: string) {
    super(`malformed list_folder entry (${reason}): ${JSON.stringify(entry).slice(0, 300)}`);
    this.name = 'MalformedEntryError';
  }
}

type AnyMetadata = files.FileMetadataReference | files.FolderMetadataReference | files.DeletedMetadataReference;

/** Converts one SDK list entry; rejects what the engine cannot key (no path_lower: not mounted). */
export function fromDropboxMetadata(raw: AnyMetadata): ListedEntry {
  const meta = raw as AnyMetadata & Record<string, unknown>;
  const pathLower = meta.path_lower;
  const pathDisplay = meta.path_display ?? pathLower;
  if (typeof pathLower !== 'string' || typeof pathDisplay !== 'string') throw new MalformedEntryError(raw, 'no path');
  const name = typeof meta.name === 'string' ? meta.name : pathDisplay.slice(pathDisplay.lastIndexOf('/') + 1);
  switch (meta['.tag']) {
    case 'deleted':
      return { tag: 'deleted', pathLower, pathDisplay, name };
    case 'folder':
      return { tag: 'folder', pathLower, pathDisplay, name, id: String(meta.id) };
    case 'file': {
      const file = meta as files.FileMetadataReference;
      if (typeof file.rev !== 'string' || typeof file.id !== 'string') throw new MalformedEntryError(raw, 'file without id or rev');
      return {
        tag: 'file',
        pathLower,
        pathDisplay,
        name,
        id: file.id,
        rev: file.rev,
        contentHash: file.content_hash ?? '',
        size: Number(file.size),
        clientModified: file.client_modified,
        serverModified: file.server_modified,
        isDownloadable: file.is_downloadable !== false,
      };
    }
    default:
      throw new MalformedEntryError(raw, `unknown .tag ${String(meta['.tag'])}`);
  }
}
