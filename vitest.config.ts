import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'machines/**/*.test.ts'],
    // Every suite starts its own redis-server; on 2 cores a few files at once is the sweet spot.
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    globalSetup: [],
  },
});
