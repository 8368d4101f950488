import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import type { FaultInjector } from './faults.js';
import type { ListingService } from './listing.js';
import type { DropboxModel } from './model.js';
import type { EmulatorStats } from './stats.js';

/** What every route handler shares. */
export type EmulatorDeps = {
  model: DropboxModel;
  listings: ListingService;
  faults: FaultInjector;
  stats: EmulatorStats;
  /** Default page size when a client sends no `limit`. */
  pageLimit: number;
  /** Aborted by close(), so hanging and long-polling requests end with the server. */
  closing: AbortSignal;
  /** When set, /oauth2/token checks client_id / client_secret against these. */
  appKey: string | undefined;
  appSecret: string | undefined;
  /** False: listings carry no `content_hash`, as a Dropbox-compatible server might (Dropbox always sends one). */
  listsContentHash: boolean;
};

export type EmulatorEnv = { Bindings: HttpBindings };
export type EmulatorContext = Context<EmulatorEnv>;
