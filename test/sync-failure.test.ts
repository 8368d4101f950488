import { describe, expect, it } from 'vitest';
import { MAX_RETRY_DELAY_MS, retryDelayMs, SyncError, toSyncFailure } from '../src/sync/sync-failure.js';

describe('retryDelayMs', () => {
  it('doubles per attempt, with jitter between half and the whole delay', () => {
    expect(retryDelayMs(1, { jitter: 0 })).toBe(500);
    expect(retryDelayMs(1, { jitter: 0.999 })).toBe(1000);
    expect(retryDelayMs(3, { jitter: 0 })).toBe(2000);
  });

  it('is capped, so a long outage is retried every few minutes, not never', () => {
    expect(retryDelayMs(50, { jitter: 0.999 })).toBeLessThanOrEqual(MAX_RETRY_DELAY_MS);
  });

  it('never retries sooner than the server asked', () => {
    expect(retryDelayMs(1, { jitter: 0, retryAfterMs: 300_000 })).toBe(300_000);
  });

  it('waits at most MAX_RETRY_DELAY_MS whatever a failure says (one persisted by an older engine)', () => {
    // Past 2^31 ms a timer fires at once: a restored backoff would retry in a loop.
    expect(retryDelayMs(1, { jitter: 0, retryAfterMs: 40 * 24 * 3_600_000 })).toBe(MAX_RETRY_DELAY_MS);
  });
});

describe('toSyncFailure', () => {
  it('keeps the failure a SyncError carries', () => {
    const failure = { kind: 'rate_limited' as const, message: '429', at: 5, jitter: 0.1, retryAfterMs: 2000 };
    expect(toSyncFailure(new SyncError(failure))).toEqual(failure);
  });

  it('turns an unexpected error into an internal failure with a time', () => {
    const failure = toSyncFailure(new TypeError('boom'));
    expect(failure.kind).toBe('internal');
    expect(failure.message).toBe('boom');
    expect(failure.at).toBeGreaterThan(0);
  });
});
