import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { APP_SECRET, startHarness, type Harness } from '../support/sync-harness.js';

/** The events a host application, the metrics and the status page see while an account syncs. */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

describe('engine events', () => {
  it('reports the run, each synced file, each entry, removals and webhooks', async () => {
    const account = 'dbid:events';
    const seen: string[] = [];
    const track = (name: string, describe: (payload: never) => string) => h.engine.events.on(name as never, ((p: never) => seen.push(`${name} ${describe(p)}`)) as never);
    track('syncStarted', (p: { accountId: string }) => p.accountId);
    track('listed', (p: { mode: string; entries: number }) => `${p.mode} ${p.entries}`);
    track('fileSynced', (p: { path: string; downloaded: boolean }) => `${p.path} ${p.downloaded}`);
    track('entrySet', (p: { entry: { path: string; title: string } }) => `${p.entry.path} ${p.entry.title}`);
    track('fileRemoved', (p: { path: string }) => p.path);
    track('entryDropped', (p: { path: string }) => p.path);
    track('webhook', (p: { outcome: string; reason?: string }) => `${p.outcome}${p.reason ? ` ${p.reason}` : ''}`);
    const states: string[] = [];
    h.engine.events.on('state', (p) => { if (p.accountId === account) states.push(`${p.from}>${p.to}`); });

    h.emulator.model.addAccount(account, { accessToken: 'tok-events' });
    h.emulator.model.writeFile(account, '/a.md', '# A');
    h.emulator.model.writeFile(account, '/b.bin', 'bytes');
    await h.linkAccount(account, { accessToken: 'tok-events' });
    await h.waitForIdle(account);
    h.emulator.model.remove(account, '/a.md');
    expect((await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: [account], attempts: 1 })).status).toBe(200);
    expect((await sendWebhook({ url: `${h.url}/webhooks/dropbox`, appSecret: 'wrong', accounts: [account], attempts: 1 })).status).toBe(403);
    await h.waitForIdle(account);

    expect(seen.sort()).toEqual([
      'entryDropped /a.md',
      'entrySet /a.md A',
      'fileRemoved /a.md',
      'fileSynced /a.md true',
      'fileSynced /b.bin true',
      'listed continue 1',
      'listed full 2',
      `syncStarted ${account}`,
      `syncStarted ${account}`,
      'webhook accepted',
      'webhook refused signature',
    ]);
    expect(states.slice(0, 5)).toEqual(['idle>fetching', 'fetching>applying', 'applying>downloading', 'downloading>finishing', 'finishing>idle']);
  });
});
