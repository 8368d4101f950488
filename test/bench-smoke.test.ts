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
      // Every figure that has a baseline measured it in the same run (figure 6's is BullMQ).
      if (result.baseline != null) expect(Number.isFinite(result.baseline), `figure ${result.id} baseline`).toBe(true);
      expect(result.details, `figure ${result.id} details`).toBeTypeOf('object');
    }
    expect(table(results)).toContain('signed webhooks');
  }, 120_000);
});
