type AccountStats = {
  calls: Map<string, number>;
  /** Calls answered 401 for a token the account had (expired, revoked), by route: not in `calls`. */
  refused: Map<string, number>;
  listingsInFlight: number;
  maxListingsInFlight: number;
  downloadsInFlight: number;
  maxDownloadsInFlight: number;
  downloads: Map<string, number>;
};

const LISTING_ROUTES = new Set(['files/list_folder', 'files/list_folder/continue']);

/**
 * What the engine under test did to the emulator. The listing gauges exist because Dropbox rate-limits
 * overlapping list_folder calls for one user, so an engine must never run two listings of an account at once.
 */
export class EmulatorStats {
  private accounts = new Map<string, AccountStats>();
  tokenRequests = 0;

  /** Call when a request for `route` starts; call the returned function when its answer is finished. */
  begin(accountId: string, route: string): () => void {
    const stats = this.account(accountId);
    bump(stats.calls, route);
    if (LISTING_ROUTES.has(route)) {
      stats.listingsInFlight += 1;
      stats.maxListingsInFlight = Math.max(stats.maxListingsInFlight, stats.listingsInFlight);
      return once(() => (stats.listingsInFlight -= 1));
    }
    if (route === 'files/download') {
      stats.downloadsInFlight += 1;
      stats.maxDownloadsInFlight = Math.max(stats.maxDownloadsInFlight, stats.downloadsInFlight);
      return once(() => (stats.downloadsInFlight -= 1));
    }
    return () => {};
  }

  recordRefusal(accountId: string, route: string): void {
    bump(this.account(accountId).refused, route);
  }

  /** Calls refused with a 401 for a token the account had (expired, revoked). */
  refused(accountId: string, route?: string): number {
    return countIn(this.accounts.get(accountId)?.refused, route);
  }

  recordDownload(accountId: string, pathLower: string): void {
    bump(this.account(accountId).downloads, pathLower);
  }

  calls(accountId: string, route?: string): number {
    return countIn(this.accounts.get(accountId)?.calls, route);
  }

  callsByRoute(accountId: string): Record<string, number> {
    return Object.fromEntries(this.accounts.get(accountId)?.calls ?? []);
  }

  listingsInFlight(accountId: string): number {
    return this.accounts.get(accountId)?.listingsInFlight ?? 0;
  }

  maxListingsInFlight(accountId: string): number {
    return this.accounts.get(accountId)?.maxListingsInFlight ?? 0;
  }

  /** The most downloads of this account the emulator served at once. */
  maxDownloadsInFlight(accountId: string): number {
    return this.accounts.get(accountId)?.maxDownloadsInFlight ?? 0;
  }

  downloads(accountId: string, pathLower?: string): number {
    return countIn(this.accounts.get(accountId)?.downloads, pathLower);
  }

  downloadsByPath(accountId: string): Record<string, number> {
    return Object.fromEntries(this.accounts.get(accountId)?.downloads ?? []);
  }

  /** Clears counters; requests still in flight keep being counted as in flight. */
  resetStats(): void {
    for (const stats of this.accounts.values()) {
      stats.calls.clear();
      stats.downloads.clear();
      stats.refused.clear();
      stats.maxListingsInFlight = stats.listingsInFlight;
    }
    this.tokenRequests = 0;
  }

  private account(accountId: string): AccountStats {
    let stats = this.accounts.get(accountId);
    if (!stats) {
      stats = { calls: new Map(), refused: new Map(), listingsInFlight: 0, maxListingsInFlight: 0, downloadsInFlight: 0, maxDownloadsInFlight: 0, downloads: new Map() };
      this.accounts.set(accountId, stats);
    }
    return stats;
  }
}

/** A function that does its work the first time it is called only (an answer can end twice). */
function once(end: () => void): () => void {
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    end();
  };
}

function bump(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** One key's count, or (no key) the sum of all of them. */
function countIn(counts: Map<string, number> | undefined, key?: string): number {
  if (!counts) return 0;
  if (key !== undefined) return counts.get(key) ?? 0;
  let total = 0;
  for (const count of counts.values()) total += count;
  return total;
}
