import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { TestRedis } from './support/redis-server.js';

let server: TestRedis;
beforeAll(async () => { server = await TestRedis.start(); });
afterAll(async () => { await server.stop(); });

it('keeps appended data across a SIGKILL and restart', async () => {
  const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  await client.set('k', 'v');
  client.disconnect();
  await server.restart();
  const again = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await again.connect();
  expect(await again.get('k')).toBe('v');
  again.disconnect();
});
