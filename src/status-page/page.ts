import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AnyStateMachine } from 'xstate';
import { layoutDiagram, renderDiagramSvg, stateGraph } from './diagram.js';

const staticFile = (name: string) => readFileSync(new URL(`./static/${name}`, import.meta.url), 'utf8');

export interface StatusPage {
  html: string;
  /** Allows exactly the page's own inline script and style, nothing from elsewhere. */
  contentSecurityPolicy: string;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/**
 * The whole page as one self-contained document (no CDN, nothing fetched but the page's own API):
 * the machine's diagram rendered once to SVG, the stylesheet and the script inline. It holds no
 * secret and is the same for everyone, so it is served without authentication.
 */
export function renderStatusPage(machine: AnyStateMachine, assets: { css: string; js: string } = { css: staticFile('page.css'), js: staticFile('page.js') }): StatusPage {
  const svg = renderDiagramSvg(layoutDiagram(stateGraph(machine)));
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Mailroom status</title>
<style>${assets.css}</style>
</head>
<body>
<header>
<h1>Mailroom</h1>
<span class="spacer"></span>
<span id="conn" class="conn" data-conn="offline">offline</span>
<button id="logout" type="button" hidden>Sign out</button>
</header>
<main>
<section id="login" hidden>
<form id="login-form" autocomplete="off">
<h2>Sign in</h2>
<label for="token">Admin token</label>
<input id="token" type="password" autocomplete="off" spellcheck="false" required>
<button class="primary" type="submit">Open status</button>
<p class="hint">Kept in this tab only (sessionStorage). You can also open <code>/#token=…</code>.</p>
<p id="login-error" class="error" role="alert" hidden></p>
</form>
</section>
<section id="accounts" aria-live="polite" hidden>
<p id="coverage" hidden></p>
<p id="empty">No linked accounts.</p>
</section>
</main>
<template id="diagram-template">${svg}</template>
<template id="account-template"><article class="account" data-account="" data-state="">
<header><h2 class="account-id"></h2><span class="badge state-badge"></span><span class="badge dirty" hidden>dirty</span></header>
<div class="diagram-holder"></div>
<dl>
<dt class="progress-label">Run</dt><dd><progress max="1" value="0"></progress><span class="progress-text"></span></dd>
<dt>Queue</dt><dd class="pending"></dd>
<dt>Last sync</dt><dd class="last-sync"></dd>
<dt>Last error</dt><dd class="last-error"></dd>
<dt>Recent</dt><dd class="trail"></dd>
</dl>
</article></template>
<script>${assets.js}</script>
</body>
</html>
`;
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src ${sha256(assets.js)}`,
    `style-src ${sha256(assets.css)}`,
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    // The login form is handled by the script; should it ever submit, nothing leaves (the input has no name either).
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, contentSecurityPolicy };
}
