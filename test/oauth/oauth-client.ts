import { expect } from 'vitest';
import type { EngineServer } from '../support/sync-harness.js';

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

/** A one-time start link, as `POST /oauth/start` answers it. */
export interface StartLink {
  url: URL;
  expiresInMs: number;
}

/** `POST /oauth/start` with the admin token, as `mailroom link-url` asks for a link. */
export async function issueStartLink(server: Pick<EngineServer, 'api'>): Promise<StartLink> {
  const res = await server.api('/oauth/start', { method: 'POST' });
  const body = await res.text();
  expect(res.status, body).toBe(200);
  const { url, expiresInMs } = JSON.parse(body) as { url: string; expiresInMs: number };
  return { url: new URL(url), expiresInMs };
}

/** What a start link's page offers: the form its button posts (the ticket to POST /oauth/continue). */
export interface StartPage {
  html: string;
  headers: Headers;
  /** The form's action, resolved against the link as a browser does. */
  continueUrl: URL;
  ticket: string;
}

/** A browser (or a link scanner) opening a start link: the page, nothing clicked. */
export async function openStartPage(url: URL | string): Promise<StartPage> {
  const res = await fetch(url, { redirect: 'manual' });
  const html = await res.text();
  expect(res.status, html).toBe(200);
  const action = /<form method="post" action="([^"]+)">/.exec(html)?.[1];
  const ticket = /<input type="hidden" name="ticket" value="([^"]+)">/.exec(html)?.[1];
  expect(action, html).toBeDefined();
  expect(ticket, html).toBeDefined();
  return { html, headers: res.headers, continueUrl: new URL(action!, url), ticket: ticket! };
}

/** The page's button: the form posted as a browser posts it, the redirect not followed. */
export function pressContinue(page: Pick<StartPage, 'continueUrl' | 'ticket'>): Promise<Response> {
  return fetch(page.continueUrl, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ ticket: page.ticket }) });
}

/** A browser opening a start URL and pressing its button, then the emulator's (auto-approving) authorize page; stops before the callback. */
export async function openStartLink(url: URL | string): Promise<BrowserTrip> {
  const start = await pressContinue(await openStartPage(url));
  expect(start.status, await start.clone().text()).toBe(303);
  const authorizeUrl = new URL(start.headers.get('location')!);
  const setCookie = start.headers.getSetCookie().find((c) => c.startsWith('mailroom_oauth_'));
  expect(setCookie).toBeDefined();
  const cookie = setCookie!.split(';')[0]!;
  const authorize = await fetch(authorizeUrl, { redirect: 'manual' });
  expect(authorize.status, await authorize.clone().text()).toBe(302);
  return { authorizeUrl, cookie, setCookie: setCookie!, callbackUrl: new URL(authorize.headers.get('location')!) };
}

/** A start link from the engine, opened in a browser: the operator's way in; stops before the callback. */
export async function startTrip(server: Pick<EngineServer, 'api'>): Promise<BrowserTrip> {
  return openStartLink((await issueStartLink(server)).url);
}

/** The browser following the redirect back to the engine, with (or without) its cookie. */
export async function callback(url: URL | string, cookie: string | undefined): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  return { status: res.status, text: await res.text() };
}
