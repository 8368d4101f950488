/**
 * Points the official Dropbox SDK at another origin (an emulator). The SDK's `domain` option always
 * builds https:// URLs and mangles the token URL, so the only reliable hook is its `fetch` option.
 */

import { CallDeadline } from './call-deadline.js';

/** Base URLs such as `http://127.0.0.1:1234`; undefined means the real Dropbox host. */
export type DropboxHosts = { api?: string; content?: string; notify?: string };

function baseFor(host: string, hosts: DropboxHosts): string | undefined {
  switch (host) {
    case 'api.dropboxapi.com':
      return hosts.api;
    case 'content.dropboxapi.com':
      return hosts.content;
    case 'notify.dropboxapi.com':
      return hosts.notify ?? hosts.api;
    default:
      return undefined;
  }
}

export function rewriteDropboxUrl(url: string, hosts: DropboxHosts): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (parsed.protocol !== 'https:') return url;
  const base = baseFor(parsed.host, hosts);
  if (base === undefined) return url;
  return base.replace(/\/+$/, '') + parsed.pathname + parsed.search;
}

/**
 * A fetch for `new Dropbox({ fetch })` (and `DropboxAuth`): rewrites the origin and gives every call a
 * deadline (CallDeadline). The deadline stays on the response until its body is read, so reading the
 * body is bounded too: a stalled download fails instead of hanging the sync forever.
 */
export function createDropboxFetch(
  hosts: DropboxHosts,
  options: { timeoutMs: number; signal?: AbortSignal },
): typeof fetch {
  return async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const deadline = new CallDeadline(options.timeoutMs, [init?.signal, options.signal, request?.signal]);
    try {
      const response = request
        ? await globalThis.fetch(new Request(rewriteDropboxUrl(request.url, hosts), request), { ...init, signal: deadline.signal })
        : await globalThis.fetch(rewriteDropboxUrl(input instanceof URL ? input.href : (input as string), hosts), { ...init, signal: deadline.signal });
      return deadline.untilBodyRead(response);
    } catch (error) {
      deadline.release();
      throw error;
    }
  };
}
