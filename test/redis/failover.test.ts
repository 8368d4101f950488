import { createServer, connect, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { healthRoutes } from '../../src/http/health-routes.js';
import { freePort, TestRedis } from '../support/redis-server.js';
import { APP_SECRET, startHarness, waitUntil, type Harness } from '../support/sync-harness.js';

/**
 * A failover behind one address (a DNS name, a virtual IP, a managed primary endpoint): the old
 * primary becomes a replica and keeps its clients connected; the address now reaches the new one.
 * Here a TCP proxy is the address: new connections go where it points, old ones stay.
 */
let primary: TestRedis;
let replica: TestRedis;
let proxy: Server;
let target = 0;
const sockets: Socket[] = [];
let h: Harness;
const account = 'dbid:failover';

beforeAll(async () => {
  primary = await TestRedis.start();
  replica = await TestRedis.start();
  target = primary.port;
  const port = await freePort();
  proxy = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    sockets.push(client, upstream);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
  h = await startHarness({ redisServer: { url: `redis://127.0.0.1:${port}`, stop: async () => {} } as unknown as TestRedis });
  expect((await h.linkAccount(account)).status).toBe(200);
  await h.waitForIdle(account);
}, 60_000);

afterAll(async () => {
  await h?.close();
  for (const socket of sockets) socket.destroy();
  proxy?.close();
  await primary?.stop();
  await replica?.stop();
});

const webhook = () => sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 });

describe('a Redis failover behind one address', () => {
  it('the engine reconnects to the new primary: webhooks are taken again, and the change syncs', async () => {
    const newPrimary = new Redis(replica.port, '127.0.0.1');
    const oldPrimary = new Redis(primary.port, '127.0.0.1');
    try {
      await newPrimary.replicaof('127.0.0.1', primary.port);
      await waitUntil(async () => /master_link_status:up/.test(await newPrimary.info('replication')), 10_000, 'the replica in sync');
      await newPrimary.replicaof('NO', 'ONE');
      await oldPrimary.replicaof('127.0.0.1', replica.port);
      target = replica.port;

      // The engine's connection is still on the old primary, now a replica: the first writes fail
      // (503: Dropbox retries), the connection is made again, and the address leads to the new one.
      h.emulator.model.writeFile(account, '/after-failover.md', '# After');
      await waitUntil(async () => (await webhook()).status === 200, 15_000, 'a webhook taken by the new primary');
      expect((await fetch(`${h.url}/readyz`)).status).toBe(200);
      await h.waitForIdle(account);
      expect(await newPrimary.hexists(`mr:{${account}}:files`, '/after-failover.md')).toBe(1);
    } finally {
      newPrimary.disconnect();
      oldPrimary.disconnect();
    }
  }, 60_000);

  it('/readyz says 503 while the server it reaches is a replica', async () => {
    const reader = new Redis(primary.port, '127.0.0.1'); // the old primary: a replica since the failover
    try {
      const response = await healthRoutes(reader).request('/readyz');
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ ok: false, redis: 'read-only' });
    } finally {
      reader.disconnect();
    }
  });
});
