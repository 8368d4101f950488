// The benchmarks run the same real engine process as the tests.
export { EngineProcess, type LogLine } from '../test/support/engine-process.js';
