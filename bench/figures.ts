import type { BenchOptions, FigureResult } from './lib.js';
import { webhookRate } from './webhook-rate.js';
import { redisRoundTrips } from './redis-round-trips.js';
import { listingPasses } from './listing-passes.js';
import { initialSync } from './initial-sync.js';
import { changeLatency } from './change-latency.js';
import { storm } from './storm.js';
import { memory } from './memory.js';
import { restart } from './restart.js';

export const FIGURES = {
  '1': { title: 'signed webhooks per second vs a bare route', run: webhookRate },
  '2': { title: 'Redis round trips per webhook per account', run: redisRoundTrips },
  '3': { title: 'listing passes caused by K webhooks during one sync', run: listingPasses },
  '4': { title: 'initial sync in files/s vs a bare SDK script', run: initialSync },
  '5': { title: 'webhook to file on disk vs a bare list+download+write', run: changeLatency },
  '6': { title: 'storm: N accounts notified at once until all idle', run: storm },
  '7': { title: 'memory with linked idle accounts after the storm', run: memory },
  '8': { title: 'restart after kill -9 mid-sync until every account resumed', run: restart },
} satisfies Record<string, { title: string; run: (options: BenchOptions) => Promise<FigureResult> }>;

export type FigureId = keyof typeof FIGURES;
