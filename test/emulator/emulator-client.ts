import { Dropbox, DropboxResponseError } from 'dropbox';
import { createDropboxFetch } from '../../src/dropbox/origin-rewrite.js';

/** The real SDK, pointed at an emulator through the origin-rewriting fetch. */
export function sdkFor(url: string, auth: { accessToken?: string; refreshToken?: string; clientId?: string; clientSecret?: string }, timeoutMs = 5_000): Dropbox {
  return new Dropbox({ ...auth, fetch: createDropboxFetch({ api: url, content: url }, { timeoutMs }) });
}

/** The DropboxResponseError a call rejects with (fails the test if it resolves or fails otherwise). */
export async function responseError(call: Promise<unknown>): Promise<DropboxResponseError<any>> {
  try {
    await call;
  } catch (error) {
    if (error instanceof DropboxResponseError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

/** Any rejection, for failures below HTTP (aborts, broken bodies). */
export async function rejection(call: Promise<unknown>): Promise<unknown> {
  try {
    await call;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

/** A raw RPC call, for checking bytes the SDK would hide. */
export async function rawRpc(url: string, route: string, token: string, body: string): Promise<{ status: number; contentType: string | null; text: string }> {
  const response = await fetch(`${url}/2/${route}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body,
  });
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text() };
}
