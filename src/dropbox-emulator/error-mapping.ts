import { DropboxApiError, endpointError, lookupError } from './api-error.js';
import { InvalidCursorError } from './cursor.js';
import { CursorFolderGoneError, CursorResetError } from './listing.js';
import { ModelError } from './model.js';
import { MalformedPathError } from './paths.js';

/** Turns a typed failure from the model or the listing layer into the answer Dropbox gives for it. */
export function toApiError(error: unknown, route: string): DropboxApiError | undefined {
  if (error instanceof DropboxApiError) return error;
  if (error instanceof CursorResetError) return endpointError('reset', { '.tag': 'reset' });
  if (error instanceof CursorFolderGoneError) return lookupError('not_found');
  if (error instanceof InvalidCursorError) {
    return new DropboxApiError(400, `Error in call to API function "${route}": Invalid "cursor" parameter: ${JSON.stringify(error.cursor)}`);
  }
  if (error instanceof MalformedPathError) return lookupError('malformed_path');
  if (error instanceof ModelError) {
    switch (error.code) {
      case 'not_found':
      case 'unknown_account':
        return lookupError('not_found');
      case 'not_file':
        return lookupError('not_file');
      case 'not_folder':
        return lookupError('not_folder');
      case 'conflict':
        return endpointError('path/conflict', { '.tag': 'path', path: { '.tag': 'conflict', conflict: { '.tag': 'file' } } });
    }
  }
  return undefined;
}
