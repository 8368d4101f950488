/**
 * What the tests and the benchmarks share without vitest: the Dropbox app's key and secret the
 * emulator and the engine agree on, the admin token, and polling with a deadline.
 */
export const APP_SECRET = 'test-app-secret';
export const APP_KEY = 'test-app-key';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** Polls a condition until it holds (no fixed sleeps standing in for synchronisation). */
export async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string, pollMs = 15): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
