import type { DownloadItem } from '../sync/records.js';

/**
 * The download queue an account's apply step just committed, handed to the download step that
 * follows it so that step need not read it back from Redis (one round trip per run). A queue is
 * given under the lease token it was committed with and taken once: only the very next step of
 * the same lease uses it. A restart, a retry after a backoff or a new owner finds nothing here and
 * reads Redis, where the queue may have moved on. Nothing else writes an account's queue between
 * the commit and the download step (the actor is its only writer, fenced by that token).
 */
export class QueueHandover {
  private readonly queues = new Map<string, { token: string; queue: readonly DownloadItem[] }>();

  give(accountId: string, token: string, queue: readonly DownloadItem[]): void {
    this.queues.set(accountId, { token, queue });
  }

  /** The queue given under `token`, once; undefined when none was, or under another lease. */
  take(accountId: string, token: string): readonly DownloadItem[] | undefined {
    const handed = this.queues.get(accountId);
    this.queues.delete(accountId);
    return handed?.token === token ? handed.queue : undefined;
  }

  /** The actor left memory between the two steps: keep nothing for an account that is not here. */
  forget(accountId: string): void {
    this.queues.delete(accountId);
  }

  get size(): number {
    return this.queues.size;
  }
}
