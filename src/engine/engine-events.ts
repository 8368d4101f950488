import { EventEmitter } from 'node:events';
import type { Entry } from '../entries/entry-store.js';
import type { FailureKind } from '../sync/sync-failure.js';

/**
 * What the engine reports as it works: the one source for metrics, the status page, the CLI's
 * `tail`, and a host application using the engine as a library. No tokens, no file contents.
 */
export interface EngineEventMap {
  /** A verified webhook (or a refused one, with the reason). */
  webhook: [{ outcome: 'accepted' | 'refused'; reason?: 'signature' | 'malformed' | 'too_large' | 'unavailable' | 'aborted'; accounts: number; /** Accepted: the linked accounts it marked. */ accountIds?: readonly string[] }];
  /** An actor moved from one state to another, having spent `durationMs` in the first. */
  state: [{ accountId: string; from: string; to: string; durationMs: number }];
  /** A run (list, apply, download, finish) began. */
  syncStarted: [{ accountId: string }];
  /** A listing pass (list_folder or list_folder/continue to the end) completed. */
  listed: [{ accountId: string; mode: 'continue' | 'full'; pages: number; entries: number }];
  /** The applying step queued this many downloads. */
  queued: [{ accountId: string; total: number }];
  /** A file is on disk with its listed content (downloaded, or found unchanged). */
  fileSynced: [{ accountId: string; path: string; bytes: number; downloaded: boolean }];
  /** A file was removed from the mirror (deleted in Dropbox, ignored, or moved away). */
  fileRemoved: [{ accountId: string; path: string }];
  downloadFailed: [{ accountId: string; path: string; kind: FailureKind }];
  /** A queued file that no retry could write was set aside so the rest of the account syncs (its status lists it). */
  fileSetAside: [{ accountId: string; path: string; kind: FailureKind; message: string }];
  entrySet: [{ accountId: string; entry: Entry }];
  entryDropped: [{ accountId: string; path: string }];
  /** One HTTP call to Dropbox (each attempt). */
  dropboxCall: [{ route: string; durationMs: number; status: number | 'network' | 'timeout' }];
  /** A step failed; the actor backs off. */
  stepFailed: [{ accountId: string; step: string; kind: FailureKind; message: string }];
}

export class EngineEvents extends EventEmitter<EngineEventMap> {
  /** Emits without ever letting a listener's exception reach the sync that reported the event. */
  report<K extends keyof EngineEventMap>(name: K, ...args: EngineEventMap[K]): void {
    try {
      (this.emit as (name: K, ...a: EngineEventMap[K]) => boolean)(name, ...args);
    } catch {
      // a broken listener must not break a sync
    }
  }
}
