import { describe, expect, it } from 'vitest';
import { FIGURES } from '../bench/figures.js';
import { runBench, table } from '../bench/run.js';

/**
 * The benchmarks still run: the quick mode of every figure (`npm run bench:quick`) produces a
 * number. Their values are not checked here: benchmarks are never timed tests (see docs/benchmarks.md).
 */
describe('benchmarks (quick mode)', () => {
  it('every figure runs and produces numbers', async () => {
    const results = await runBench({ quick: true, log: () => {} });
    expect(results.map((r) => r.id)).toEqual(Object.keys(FIGURES));
    for (const result of results) {
      expect(Number.isFinite(result.measured), `figure ${result.id} measured`).toBe(true);
      // Figure 6's baseline (BullMQ) is reported as not measured when bullmq is not installed.
      if (result.id !== '6') expect(Number.isFinite(result.baseline ?? NaN), `figure ${result.id} baseline`).toBe(true);
      expect(result.details, `figure ${result.id} details`).toBeTypeOf('object');
    }
    expect(table(results)).toContain('signed webhooks');
  }, 120_000);
});
