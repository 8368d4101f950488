import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestRedis } from '../support/redis-server.js';

/** examples/host-app.ts runs as documented (`tsx examples/host-app.ts`), importing 'mailroom' by name. */
const EXAMPLE = fileURLToPath(new URL('../../examples/host-app.ts', import.meta.url));
let redisServer: TestRedis;
beforeAll(async () => { redisServer = await TestRedis.start(); });
afterAll(async () => { await redisServer.stop(); });

it('the host-app example links, logs events and prints entries', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', EXAMPLE], { env: { ...process.env, REDIS_URL: redisServer.url }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const [code] = await once(child, 'exit');
  expect(output).toContain('entry set      /Posts/Hello.md "Hello, world"');
  expect(output).toContain('file synced    /drafts/Unfinished.md (9 bytes)');
  expect(output).toContain('entry dropped  /Posts/Second.md');
  expect(output).toMatch(/entries after an edit and a deletion:\n {2}\/Posts\/Hello\.md {2}"Hello again" {2}\(\d+ bytes of html\)\n/);
  expect(output).not.toMatch(/entry set +\/drafts/);
  expect(code).toBe(0);
});
