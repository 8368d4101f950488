import { setMaxListeners } from 'node:events';
import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createEmulatorApp } from './app.js';
import { FaultInjector } from './faults.js';
import { ListingService } from './listing.js';
import { DropboxModel } from './model.js';
import { EmulatorStats } from './stats.js';
import { WebhookNotifier, type AutoWebhookOptions } from './webhook-notifier.js';

export type EmulatorOptions = {
  /** 0 (default) picks a free port. */
  port?: number;
  /** The app's key and secret: checked by /oauth2/token when given; the secret also signs auto webhooks. */
  appKey?: string;
  appSecret?: string;
  /** Delay added to every call (see also `faults.setLatency`). */
  latencyMs?: number;
  /** Page size when a client sends no `limit`; Dropbox pages hold about 500 entries. */
  pageLimit?: number;
  accessTokenLifetimeSeconds?: number;
  /** Old revisions' bytes kept per account, still downloadable by `rev:` (default 16 MiB; see model.ts). */
  supersededRevisionBytes?: number;
  /** False: listings carry no `content_hash` (a compatible server that does not compute them). Default true. */
  listsContentHash?: boolean;
  /** Notify this endpoint after model changes; `appSecret` defaults to the emulator's. */
  autoWebhook?: Omit<AutoWebhookOptions, 'appSecret'> & { appSecret?: string };
};

export type RunningEmulator = {
  /** `http://127.0.0.1:PORT`, serving the api, content and notify routes alike. */
  url: string;
  model: DropboxModel;
  faults: FaultInjector;
  stats: EmulatorStats;
  /** Sends pending auto webhooks and waits for their delivery (no-op without `autoWebhook`). */
  flushWebhooks(): Promise<void>;
  /** Also ends hanging and long-polling requests. */
  close(): Promise<void>;
};

export async function startEmulator(options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const model = new DropboxModel({ accessTokenLifetimeSeconds: options.accessTokenLifetimeSeconds, supersededRevisionBytes: options.supersededRevisionBytes });
  const faults = new FaultInjector({ latencyMs: options.latencyMs });
  const stats = new EmulatorStats();
  const closing = new AbortController();
  // Every delayed or hanging request listens on it, often more than ten at once: not a leak.
  setMaxListeners(0, closing.signal);
  const app = createEmulatorApp({
    model,
    listings: new ListingService(model),
    faults,
    stats,
    pageLimit: options.pageLimit ?? 500,
    closing: closing.signal,
    appKey: options.appKey,
    appSecret: options.appSecret,
    listsContentHash: options.listsContentHash ?? true,
  });

  const autoWebhook = options.autoWebhook;
  const appSecret = autoWebhook?.appSecret ?? options.appSecret;
  if (autoWebhook && appSecret === undefined) throw new Error('autoWebhook needs an appSecret');
  const notifier = autoWebhook ? new WebhookNotifier(model, { ...autoWebhook, appSecret: appSecret! }) : undefined;

  const server = await new Promise<Server>((resolve) => {
    const created = serve({ fetch: app.fetch, port: options.port ?? 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    model,
    faults,
    stats,
    flushWebhooks: async () => notifier?.flush(),
    close: async () => {
      closing.abort();
      await notifier?.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
