import type { DropboxModel } from './model.js';
import { sendWebhook, type WebhookDelivery } from './webhook-sender.js';

export type AutoWebhookOptions = {
  url: string;
  appSecret: string;
  /** Changes within this window share one notification, like Dropbox batching users. Default 0 (next tick). */
  debounceMs?: number;
  attempts?: number;
  baseDelayMs?: number;
};

/** Sends a webhook after model changes: dirty accounts are batched into one notification. */
export class WebhookNotifier {
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<WebhookDelivery>>();
  private readonly stopListening: () => void;
  private readonly abort = new AbortController();
  readonly deliveries: WebhookDelivery[] = [];

  constructor(model: DropboxModel, private readonly options: AutoWebhookOptions) {
    this.stopListening = model.onChange((accountId) => this.markDirty(accountId));
  }

  markDirty(accountId: string): void {
    this.dirty.add(accountId);
    this.timer ??= setTimeout(() => void this.sendPending(), this.options.debounceMs ?? 0);
  }

  /** Sends whatever is pending now and waits until every delivery started so far has finished. */
  async flush(): Promise<void> {
    await this.sendPending();
    await Promise.all([...this.inFlight]);
  }

  async close(): Promise<void> {
    this.stopListening();
    clearTimeout(this.timer);
    this.abort.abort();
    await Promise.all([...this.inFlight]);
  }

  private sendPending(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dirty.size === 0) return Promise.resolve();
    const accounts = [...this.dirty];
    this.dirty.clear();
    const delivery = sendWebhook({
      url: this.options.url,
      appSecret: this.options.appSecret,
      accounts,
      attempts: this.options.attempts,
      baseDelayMs: this.options.baseDelayMs,
      signal: this.abort.signal,
    });
    this.inFlight.add(delivery);
    return delivery.then((result) => {
      this.inFlight.delete(delivery);
      this.deliveries.push(result);
    });
  }
}
