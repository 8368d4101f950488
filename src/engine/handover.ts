/**
 * What one step of an account's run read or wrote that the next step would otherwise read back
 * from Redis: the last listed page hands the apply step its input, the apply step's commit hands
 * the download step its queue (one round trip less each). A value is given under the lease token
 * it was read with and taken once: only the very next step of the same lease uses it. A restart, a
 * retry after a backoff or a new owner finds nothing here and reads Redis, where things may have
 * moved on. Nothing else writes what is handed over between the two steps: the actor is the only
 * writer of its account's listing, index and queue, fenced by that token.
 */
export class Handover<T> {
  private readonly values = new Map<string, { token: string; value: T }>();

  give(accountId: string, token: string, value: T): void {
    this.values.set(accountId, { token, value });
  }

  /** The value given under `token`, once; undefined when none was, or under another lease. */
  take(accountId: string, token: string): T | undefined {
    const handed = this.values.get(accountId);
    this.values.delete(accountId);
    return handed?.token === token ? handed.value : undefined;
  }

  /** The actor left memory between the two steps: keep nothing for an account that is not here. */
  forget(accountId: string): void {
    this.values.delete(accountId);
  }
}
