/** Wire shapes of files.Metadata as list_folder/continue/get_metadata return them. */

export type FileMetadata = {
  '.tag': 'file';
  name: string;
  path_lower: string;
  path_display: string;
  id: string;
  client_modified: string;
  server_modified: string;
  rev: string;
  size: number;
  is_downloadable: boolean;
  content_hash: string;
};

export type FolderMetadata = {
  '.tag': 'folder';
  name: string;
  path_lower: string;
  path_display: string;
  id: string;
};

/** No id and no rev: clients map a deletion back to their index by path_lower. */
export type DeletedMetadata = {
  '.tag': 'deleted';
  name: string;
  path_lower: string;
  path_display: string;
};

export type Metadata = FileMetadata | FolderMetadata | DeletedMetadata;

/** files/download's Dropbox-API-Result carries the file metadata without the union tag. */
export function untagged(metadata: FileMetadata): Omit<FileMetadata, '.tag'> {
  const { '.tag': _tag, ...rest } = metadata;
  return rest;
}
