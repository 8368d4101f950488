import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'machines/**/*.test.ts'],
    // Every suite starts its own redis-server; on 2 cores a few files at once is the sweet spot.
    maxWorkers: 3,
    // A worker runs its files one after another in one module graph instead of a fresh process
    // per file: the suite's CPU fell from 205 to 126 s (wall 121 -> 86 s on 2 cores), most of it
    // the modules each file imported again. It asks of every test file what it asks anyway: close
    // what it opens, and put back any global it replaces (the fetch wrappers do, in afterAll)...
    isolate: false,
    // ...and fails a file that does not (test/support/shared-worker-guard.ts).
    setupFiles: ['test/support/shared-worker-guard.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    globalSetup: [],
  },
});
