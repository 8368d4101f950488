import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedMirror, readMirror, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * A download's slot is held while its bytes arrive, not while its file is written: the account's
 * download limit is what the Dropbox side sees, reached and never passed.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness({ engine: { downloadsPerAccount: 3, downloadConcurrency: 16 } }); });
afterAll(async () => { await h.close(); });

describe('download concurrency', () => {
  it('keeps the account at its limit of downloads in flight, never above it', async () => {
    const account = 'dbid:download-limit';
    h.emulator.model.addAccount(account, { accessToken: 'tok-limit' });
    for (let i = 0; i < 40; i++) h.emulator.model.writeFile(account, `/posts/${i}.md`, `# Post ${i}`);
    // Downloads slower than writes, so the lanes pile up on the download limit.
    h.emulator.faults.setLatency(30, 'files/download');
    try {
      expect((await h.linkAccount(account, { accessToken: 'tok-limit' })).status).toBe(200);
      await h.waitForIdle(account);
    } finally {
      h.emulator.faults.setLatency(0, 'files/download');
    }
    expect(await readMirror(h.dataDir, account)).toEqual(expectedMirror(h.emulator, account));
    expect(h.emulator.stats.maxDownloadsInFlight(account)).toBe(3);
  });
});
