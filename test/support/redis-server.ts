import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { openRedis } from '../../src/redis/connection.js';
import { EmbeddedRedis } from '../../src/redis/embedded-redis.js';

export { freePort } from '../../src/redis/embedded-redis.js';

/**
 * A real redis-server owned by one test file: a free port, data in a temp folder, append-only with
 * fsync on every write so fault tests can SIGKILL and restart it and keep what was acknowledged.
 */
export class TestRedis {
  private constructor(private readonly server: EmbeddedRedis) {}

  static async start(): Promise<TestRedis> {
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-redis-'));
    return new TestRedis(await EmbeddedRedis.start({ dir, appendfsync: 'always' }));
  }

  get url(): string {
    return this.server.url;
  }

  get port(): number {
    return this.server.port;
  }

  kill(): Promise<void> {
    return this.server.kill();
  }

  restart(): Promise<void> {
    return this.server.restart();
  }

  async stop(): Promise<void> {
    await this.server.kill();
    rmSync(this.server.dir, { recursive: true, force: true });
  }
}

/** A test file's redis-server with a client configured as the engine's (scripts loaded, fail-fast). */
export async function startTestRedisClient(): Promise<{ server: TestRedis; redis: Redis; stop(): Promise<void> }> {
  const server = await TestRedis.start();
  const redis = await openRedis(server.url);
  return {
    server,
    redis,
    async stop() {
      redis.disconnect();
      await server.stop();
    },
  };
}
