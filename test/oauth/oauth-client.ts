import { expect } from 'vitest';
import { ADMIN_TOKEN, type Harness } from '../support/sync-harness.js';

/** What one trip through the browser flow produced (the way a browser would carry it). */
export interface BrowserTrip {
  /** The authorize URL the engine redirected to. */
  authorizeUrl: URL;
  /** `name=value` of the state cookie the engine set. */
  cookie: string;
  setCookie: string;
  /** Where the emulator's authorize page sent the browser back (with code / error and state). */
  callbackUrl: URL;
}

/** GET /oauth/start with the admin token, then the emulator's (auto-approving) authorize page; stops before the callback. */
export async function startTrip(h: Harness): Promise<BrowserTrip> {
  const start = await fetch(`${h.url}/oauth/start?token=${encodeURIComponent(ADMIN_TOKEN)}`, { redirect: 'manual' });
  expect(start.status).toBe(302);
  const authorizeUrl = new URL(start.headers.get('location')!);
  const setCookie = start.headers.getSetCookie().find((c) => c.startsWith('mailroom_oauth_'));
  expect(setCookie).toBeDefined();
  const cookie = setCookie!.split(';')[0]!;
  const authorize = await fetch(authorizeUrl, { redirect: 'manual' });
  expect(authorize.status, await authorize.clone().text()).toBe(302);
  return { authorizeUrl, cookie, setCookie: setCookie!, callbackUrl: new URL(authorize.headers.get('location')!) };
}

/** The browser following the redirect back to the engine, with (or without) its cookie. */
export async function callback(url: URL | string, cookie: string | undefined): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  return { status: res.status, text: await res.text() };
}
