import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { openRedis, RedisConnectError } from '../../src/redis/connection.js';
import { freePort, TestRedis } from '../support/redis-server.js';

/**
 * A start that cannot reach Redis says where and why: connect() alone only says "Connection is
 * closed.", which names neither Redis nor the cause (a wrong port, a firewall, a password).
 */
describe('openRedis, when Redis cannot be reached at start', () => {
  it('names the address and the cause when nothing listens there', async () => {
    const port = await freePort();
    const failure = await openRedis(`redis://127.0.0.1:${port}`).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RedisConnectError);
    expect((failure as Error).message).toMatch(new RegExp(`^could not connect to Redis at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  describe('a server that asks for a password', () => {
    let server: TestRedis;
    let admin: Redis;
    beforeAll(async () => {
      server = await TestRedis.start();
      admin = await openRedis(server.url);
      await admin.config('SET', 'requirepass', 'the-right-secret');
    });
    afterAll(async () => {
      await admin.config('SET', 'requirepass', '');
      admin.disconnect();
      await server.stop();
    });

    it('says Redis refused the password, and never shows it', async () => {
      const wrong = new URL(server.url);
      wrong.password = 'a-wrong-secret';
      const failure = await openRedis(wrong.href).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(RedisConnectError);
      expect((failure as Error).message).toMatch(new RegExp(`^could not connect to Redis at 127\\.0\\.0\\.1:${server.port}: WRONGPASS`));
      expect((failure as Error).message).not.toContain('a-wrong-secret');
    });

    it('says a password is needed when none was given', async () => {
      await expect(openRedis(server.url)).rejects.toThrow(/^could not connect to Redis at .*: NOAUTH/);
    });
  });
});
