import { afterAll, expect } from 'vitest';

/**
 * The suite runs its files one after another in shared workers (vitest.config.ts, `isolate:
 * false`), so a global one file replaces and leaves replaced would reach the files after it, and
 * fail them far from the cause. Each file must put back what it changed: fail that file instead.
 */
const fetchAtStart = globalThis.fetch;
const environmentAtStart = { ...process.env };

afterAll(() => {
  expect(globalThis.fetch === fetchAtStart, 'globalThis.fetch was replaced and not put back').toBe(true);
  expect(process.env, 'process.env was changed and not put back').toEqual(environmentAtStart);
});
