import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchChromium } from '../support/chromium.js';
import { startHarness, waitUntil, type Harness } from '../support/sync-harness.js';
import { issueStartLink } from './oauth-client.js';

/**
 * A start link in headless Chromium: the page, its button, the emulator's authorize page (which
 * approves at once and redirects back), the callback. What fetch-based tests cannot show: that the
 * page's Content-Security-Policy lets its form lead on to the authorize page and back (Chromium
 * enforces form-action on the redirects after a form), and that the state cookie set on the
 * form's answer comes back with the callback.
 */
const HAS_CHROMIUM = chromiumAvailable('OAuth browser test');

let h: Harness;
let browser: Browser;
beforeAll(async () => {
  if (!HAS_CHROMIUM) return;
  [h, browser] = await Promise.all([startHarness(), launchChromium()]);
});
afterAll(async () => {
  await browser?.close();
  await h?.close();
});

describe.skipIf(!HAS_CHROMIUM)('a start link opened in Chromium', () => {
  it('shows a page whose button links the Dropbox account signed in, then syncs it', async () => {
    const account = 'dbid:oauth-in-chromium';
    h.emulator.model.addAccount(account, { accessToken: 'unused-oauth-in-chromium' });
    h.emulator.model.writeFile(account, '/posts/hello.md', '# Hello');
    h.emulator.model.tokens.approveNextAuthorization(account);
    const link = await issueStartLink(h);

    const context = await browser.newContext();
    const page = await context.newPage();
    const blocked: string[] = [];
    page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) blocked.push(message.text()); });
    await page.goto(link.url.href);
    expect(await page.locator('h1').textContent()).toBe('Link a Dropbox account');
    await Promise.all([page.waitForURL(/\/oauth\/callback\?/), page.getByRole('button', { name: 'Continue to Dropbox' }).click()]);
    expect(await page.locator('h1').textContent()).toBe('Dropbox linked');
    expect(blocked).toEqual([]);

    await waitUntil(async () => (await h.engine.accounts.get(account)) !== null, 5_000, 'the account to be linked');
    await h.waitForIdle(account);
    // Back on the link: spent.
    await page.goto(link.url.href);
    expect(await page.locator('h1').textContent()).toBe('Not allowed');
    await context.close();
  });
});
