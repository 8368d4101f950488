import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import { openRedis } from '../../src/redis/connection.js';
import { EngineProcess, type LogLine } from './engine-process.js';
import { TestRedis } from './redis-server.js';
import { APP_KEY, APP_SECRET } from './sync-harness.js';

/**
 * What a test with real engine processes shares: one redis-server, one emulator, one data folder,
 * and the engine processes it started (killed at the end).
 */
export interface ProcessFixture {
  redisServer: TestRedis;
  /** The test's own connection, to read Redis directly. */
  redis: Redis;
  emulator: RunningEmulator;
  dataDir: string;
  engines: EngineProcess[];
  startEngine(env?: Record<string, string>, onLine?: (line: LogLine) => void): Promise<EngineProcess>;
  close(): Promise<void>;
}

export async function startProcessFixture(name: string): Promise<ProcessFixture> {
  const redisServer = await TestRedis.start();
  const redis = await openRedis(redisServer.url);
  const emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit: 100 });
  const dataDir = mkdtempSync(join(tmpdir(), `mailroom-${name}-`));
  const engines: EngineProcess[] = [];
  return {
    redisServer,
    redis,
    emulator,
    dataDir,
    engines,
    async startEngine(env, onLine) {
      const engine = await EngineProcess.start({ redisUrl: redisServer.url, dataDir, dropboxUrl: emulator.url, env, onLine });
      engines.push(engine);
      return engine;
    },
    async close() {
      for (const engine of engines) await engine.kill();
      redis.disconnect();
      await emulator.close();
      await redisServer.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
