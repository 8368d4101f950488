import { serve } from '@hono/node-server';
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { legacyUserId, webhookBody, webhookSignature } from '../../src/dropbox-emulator/webhook-sender.js';
import { LINKED_ACCOUNTS_KEY } from '../../src/redis/keys.js';
import { statusPageRoutes } from '../../src/status-page/routes.js';
import { chromiumAvailable, launchChromium } from '../support/chromium.js';
import { ADMIN_TOKEN, APP_SECRET, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * The status page end to end in headless Chromium (Debian's, driven by playwright-core): the
 * page signs in with the token from the URL fragment, opens the event stream, and shows an
 * account's sync live (downloading with its progress, then idle) without reloading.
 */
/** Screenshots go to `.test-tmp/status-page/` at the repository root (ignored by git). */
const OUTPUT_DIR = process.env.STATUS_PAGE_OUTPUT_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.test-tmp', 'status-page');
export const SCREENSHOT = join(OUTPUT_DIR, 'status-page.png');
const HAS_CHROMIUM = chromiumAvailable('status page browser test');
const ACCOUNT = 'dbid:browser-1';
const FILES = 80;
const card = `article.account[data-account="${ACCOUNT}"]`;

let h: Harness;
let browser: Browser;
/** Every URL the browser asked the server for. */
const requested: string[] = [];

beforeAll(async () => {
  if (!HAS_CHROMIUM) return;
  mkdirSync(OUTPUT_DIR, { recursive: true });
  [h, browser] = await Promise.all([startHarness(), launchChromium()]);
});

afterAll(async () => {
  await browser?.close();
  await h?.close();
});

async function openPage(path: string, base = h.url): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 620 } });
  const page = await context.newPage();
  page.on('request', (request) => requested.push(request.url()));
  await page.goto(`${base}${path}`);
  return page;
}

async function postWebhook(accounts: string[]): Promise<void> {
  const body = webhookBody(accounts, accounts.map(legacyUserId));
  const response = await fetch(`${h.url}/webhooks/dropbox`, { method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-Dropbox-Signature': webhookSignature(APP_SECRET, body) } });
  expect(response.status).toBe(200);
}

describe.skipIf(!HAS_CHROMIUM)('the status page in Chromium', () => {
  it('without a token shows the login form, and refuses a wrong token', async () => {
    const page = await openPage('/');
    await page.locator('#login-form').waitFor({ state: 'visible', timeout: 5_000 });
    expect(await page.locator('#accounts').isVisible()).toBe(false);
    await page.fill('#token', 'not-the-token');
    await page.click('#login-form button[type=submit]');
    await expect.poll(() => page.locator('#login-error').textContent(), { timeout: 5_000 }).toBe('That token was refused.');
    await page.context().close();
  });

  it('signs in through the login form', async () => {
    const page = await openPage('/');
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.locator('#conn[data-conn="live"]').waitFor({ timeout: 5_000 });
    expect(await page.locator('#login').isVisible()).toBe(false);
    await page.context().close();
  });

  it('shows a sync live: downloading with files done / total, then idle; then a webhook run', async () => {
    const page = await openPage(`/#token=${ADMIN_TOKEN}`);
    await page.locator('#conn[data-conn="live"]').waitFor({ timeout: 5_000 });
    // The token left the address bar as soon as the page read it.
    expect(page.url()).toBe(`${h.url}/`);

    h.emulator.model.addAccount(ACCOUNT, { accessToken: `token-${ACCOUNT}` });
    for (let i = 0; i < FILES; i++) h.emulator.model.writeFile(ACCOUNT, `/notes/note-${String(i).padStart(2, '0')}.md`, `# note ${i}\n${'text '.repeat(40)}`);
    h.emulator.faults.setLatency(60, 'files/download');
    expect((await h.linkAccount(ACCOUNT)).status).toBe(200);

    // Mid-run: the account is downloading, its box is highlighted, and some but not all files are done.
    await page.waitForFunction(
      ({ selector, files }) => {
        const el = document.querySelector(selector);
        const text = el?.querySelector('.progress-text')?.textContent ?? '';
        const match = new RegExp(`^(\\d+) / ${files} files`).exec(text);
        return el?.getAttribute('data-state') === 'downloading' && match !== null && Number(match[1]) > 0 && Number(match[1]) < files;
      },
      { selector: card, files: FILES },
      { timeout: 10_000, polling: 'raf' },
    );
    const acc = page.locator(card);
    expect(await acc.locator('.state-badge').textContent()).toBe('downloading');
    expect(await acc.locator('svg .state.current').getAttribute('data-state')).toBe('downloading');
    expect(await acc.locator('svg .state.current').count()).toBe(1);
    expect(await acc.locator('.progress-label').textContent()).toBe('Current run');
    await page.screenshot({ path: join(OUTPUT_DIR, 'status-page-downloading.png'), fullPage: true });

    // Then idle, with every file done and a last sync time.
    await page.locator(`${card}[data-state="idle"]`).waitFor({ timeout: 10_000 });
    await expect.poll(() => acc.locator('.progress-text').textContent(), { timeout: 5_000 }).toMatch(new RegExp(`^${FILES} / ${FILES} files · \\d+(\\.\\d)? KB$`));
    expect(await acc.locator('.progress-label').textContent()).toBe('Last run');
    expect(await acc.locator('svg .state.current').getAttribute('data-state')).toBe('idle');
    // The status fields follow from a read of the account just after the state change.
    await expect.poll(() => acc.locator('.last-sync').textContent(), { timeout: 5_000 }).toMatch(/s ago\)$/);
    expect(await acc.locator('.last-error').textContent()).toBe('none');
    expect(await acc.locator('.pending').textContent()).toBe('0 files to download');
    expect(await acc.locator('.trail').textContent()).toBe('idle → fetching → applying → downloading → finishing → idle');

    // A change in Dropbox and its webhook: a new run shows up, one file this time, slow enough to see.
    h.emulator.faults.setLatency(1_000, 'files/download');
    h.emulator.model.writeFile(ACCOUNT, '/notes/note-00.md', '# note 0, edited');
    await postWebhook([ACCOUNT]);
    await page.locator(`${card}[data-state="downloading"]`).waitFor({ timeout: 5_000 });
    await expect.poll(() => acc.locator('.progress-text').textContent(), { timeout: 5_000 }).toBe('0 / 1 files · 0 B');
    await page.locator(`${card}[data-state="idle"]`).waitFor({ timeout: 10_000 });
    await expect.poll(() => acc.locator('.progress-text').textContent(), { timeout: 5_000 }).toMatch(/^1 \/ 1 files · \d+ B$/);
    expect(await acc.locator('.trail').textContent()).toMatch(/idle → fetching → applying → downloading → finishing → idle$/);

    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // The token never went out in a URL (so never into an access log): only in the ticket request's header.
    expect(requested.length).toBeGreaterThan(0);
    for (const url of requested) expect(url).not.toContain(ADMIN_TOKEN);
    expect(requested.some((url) => /\/events\?ticket=[A-Za-z0-9_-]{43}$/.test(url))).toBe(true);
    await page.context().close();
  });

  it('with more accounts linked than it shows, says how many and where the others are', async () => {
    // The status page's routes alone, on a server of their own, showing at most one account.
    const routes = statusPageRoutes({ engine: h.engine, adminToken: ADMIN_TOKEN, hub: { maxAccounts: 1 } });
    const server = await new Promise<Server>((resolve) => {
      const created = serve({ fetch: routes.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
    });
    try {
      for (const accountId of ['dbid:browser-2', 'dbid:browser-3']) await h.engine.accounts.link(accountId, { accessToken: `token-${accountId}` }, [], Date.now());
      const linked = await h.redis.scard(LINKED_ACCOUNTS_KEY);
      expect(linked).toBeGreaterThanOrEqual(2);
      const page = await openPage(`/#token=${ADMIN_TOKEN}`, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      await page.locator('#conn[data-conn="live"]').waitFor({ timeout: 5_000 });
      await page.locator('#coverage').waitFor({ state: 'visible', timeout: 5_000 });
      expect(await page.locator('article.account').count()).toBe(1);
      expect(await page.locator('#coverage').textContent()).toBe(
        `Showing 1 of ${linked} linked accounts (the most recently active first). For the others: mailroom status --state <state> or GET /accounts?state=<state>.`,
      );
      await page.screenshot({ path: join(OUTPUT_DIR, 'status-page-capped.png'), fullPage: true });
      await page.context().close();
    } finally {
      routes.statusHub!.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
