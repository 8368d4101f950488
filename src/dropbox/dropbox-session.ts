import { Dropbox, DropboxAuth } from 'dropbox';
import { createDropboxFetch, type DropboxHosts } from './origin-rewrite.js';

export interface DropboxCredentials {
  accessToken?: string;
  refreshToken?: string;
  /** Epoch ms when `accessToken` expires (known when it came from the OAuth code exchange). */
  accessTokenExpiresAt?: number;
}

export interface DropboxAppSettings {
  appKey?: string;
  appSecret?: string;
  hosts: DropboxHosts;
  /** Deadline of one HTTP call, body included. */
  callTimeoutMs: number;
  /** Dropbox's authorize page (default: the emulator's when `hosts.api` is set, else www.dropbox.com). */
  authorizeUrl?: string;
  /** The OAuth redirect URI registered with the app (default: this server's /oauth/callback as requested). */
  redirectUrl?: string;
}

/**
 * One account's authenticated access to Dropbox through the official SDK. Token refreshes are
 * single-flight (the SDK would send one per concurrent call) and happen ahead of expiry, or once
 * after a 401 `expired_access_token` (the SDK does not do that itself).
 */
export class DropboxSession {
  private readonly auth: DropboxAuth;
  private refreshing: Promise<void> | undefined;
  /**
   * One client per signal (a step's), shared by the step's calls: the SDK copies its 287 route
   * methods onto every `new Dropbox()` (10 µs and a large dictionary-mode object each), which a
   * first sync of 10,000 files paid once per download. Weak: it goes with the step.
   */
  private readonly clients = new WeakMap<AbortSignal, Dropbox>();

  /** `digestOf`: which stored credentials these are (LinkedAccount's credentialsDigest); an auth failure carries it. */
  constructor(readonly credentials: DropboxCredentials, private readonly app: DropboxAppSettings, private readonly digestOf?: () => string) {
    this.auth = new DropboxAuth({
      accessToken: credentials.accessToken,
      accessTokenExpiresAt: credentials.accessTokenExpiresAt ? new Date(credentials.accessTokenExpiresAt) : undefined,
      refreshToken: credentials.refreshToken,
      clientId: app.appKey,
      clientSecret: app.appSecret,
      fetch: createDropboxFetch(app.hosts, { timeoutMs: app.callTimeoutMs }),
    });
  }

  get credentialsDigest(): string | undefined {
    return this.digestOf?.();
  }

  get canRefresh(): boolean {
    return Boolean(this.credentials.refreshToken && this.app.appKey);
  }

  /** A client whose calls all abort with `signal` (the actor leaving its state) or their deadline. */
  async client(signal: AbortSignal): Promise<Dropbox> {
    if (this.canRefresh) await this.singleFlight(() => this.auth.checkAndRefreshAccessToken());
    let client = this.clients.get(signal);
    if (!client) {
      client = new Dropbox({ auth: this.auth, fetch: createDropboxFetch(this.app.hosts, { timeoutMs: this.app.callTimeoutMs, signal }) });
      this.clients.set(signal, client);
    }
    return client;
  }

  /** After a 401 expired_access_token: refresh once (merged with any refresh already running). */
  async refresh(): Promise<void> {
    await this.singleFlight(() => this.auth.refreshAccessToken());
  }

  private singleFlight(run: () => Promise<void>): Promise<void> {
    this.refreshing ??= run().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }
}
