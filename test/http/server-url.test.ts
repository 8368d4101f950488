import { describe, expect, it } from 'vitest';
import { serverUrl } from '../../src/http/server-url.js';

describe('the URL of the server in the log and for the demo webhooks', () => {
  it.each([
    ['127.0.0.1', 'http://127.0.0.1:8080'],
    ['localhost', 'http://localhost:8080'],
    ['0.0.0.0', 'http://127.0.0.1:8080'],
    ['::1', 'http://[::1]:8080'],
    ['[::1]', 'http://[::1]:8080'],
    ['::', 'http://[::1]:8080'],
    ['fe80::1', 'http://[fe80::1]:8080'],
  ])('HOST=%s is reached at %s', (host, url) => {
    expect(serverUrl(host, 8080)).toBe(url);
    expect(new URL(url).port).toBe('8080');
  });
});
