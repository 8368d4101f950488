import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

/**
 * Every variable with a value the engine cannot use stops the start with one line naming it and
 * what it expects, instead of running with something else (src/main.ts prints it and exits 1).
 */
function refused(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('loadConfig refuses values it would misuse', () => {
  // Node runs a timer longer than 2^31-1 ms after 1 ms: an idle actor would be passivated at once,
  // the sweep would run without pause, every Dropbox or Redis call would time out at once.
  it.each(['DROPBOX_TIMEOUT_MS', 'REDIS_COMMAND_TIMEOUT_MS', 'SWEEP_INTERVAL_MS', 'LEASE_TTL_MS', 'IDLE_TIMEOUT_MS'])('%s longer than a timer can wait', (variable) => {
    const message = refused({ [variable]: '3000000000' });
    expect(message).toMatch(new RegExp(`^invalid configuration: ${variable} = "3000000000": `));
    expect(message).toContain('2147483647');
  });

  // A blank value coerced to 0: PORT a random port, POLL_INTERVAL_MS the safety net turned off.
  it.each(['PORT', 'POLL_INTERVAL_MS', 'PARKED_RECHECK_MS', 'INSPECT_PORT', 'DROPBOX_TIMEOUT_MS'])('%s of spaces only', (variable) => {
    expect(refused({ [variable]: '  ' })).toMatch(new RegExp(`^invalid configuration: ${variable} = "  ": expected a whole number`));
  });

  // Spaces only: HOST failed later at listen (getaddrinfo ENOTFOUND, no variable named), DATA_DIR
  // put the mirrors in a folder named by spaces.
  it.each(['HOST', 'DATA_DIR'])('%s of spaces only', (variable) => {
    expect(refused({ [variable]: '   ' })).toMatch(new RegExp(`^invalid configuration: ${variable} = "   ": `));
  });

  // Bracketed or padded, HOST failed only at listen: getaddrinfo ENOTFOUND [::1], no variable named.
  it.each(['[::1]', ' 127.0.0.1'])('HOST %j', (host) => {
    expect(refused({ HOST: host })).toMatch(/^invalid configuration: HOST = .*without spaces or brackets \(::1, not \[::1\]\)/);
  });

  it('says what a number variable expects, not how the parser failed', () => {
    expect(refused({ LEASE_TTL_MS: '15s' })).toBe('invalid configuration: LEASE_TTL_MS = "15s": expected a whole number of milliseconds from 300 to 2147483647');
    expect(refused({ PORT: 'http' })).toBe('invalid configuration: PORT = "http": expected a whole number from 0 to 65535');
  });

  it('still takes well-formed values and the defaults', () => {
    const config = loadConfig({ PORT: '0', LEASE_TTL_MS: ' 1000 ', POLL_INTERVAL_MS: '0', IDLE_TIMEOUT_MS: '2147483647', PARKED_RECHECK_MS: '0' });
    expect([config.port, config.leaseTtlMs, config.pollIntervalMs, config.idleTimeoutMs, config.parkedRecheckMs]).toEqual([0, 1000, 0, 2147483647, 0]);
    const defaults = loadConfig({});
    expect([defaults.port, defaults.leaseTtlMs, defaults.sweepIntervalMs, defaults.downloadConcurrency, defaults.parkedRecheckMs]).toEqual([8080, 15000, 10000, 16, 3_600_000]);
  });

  // Without DROPBOX_APP_SECRET the local demo runs on its own emulator: these would be ignored.
  it.each(['DROPBOX_API_URL', 'DROPBOX_CONTENT_URL'])('%s without DROPBOX_APP_SECRET', (variable) => {
    expect(refused({ [variable]: 'http://127.0.0.1:9000' })).toMatch(new RegExp(`^invalid configuration: ${variable} is set but DROPBOX_APP_SECRET is not`));
    expect(loadConfig({ [variable]: 'http://127.0.0.1:9000', DROPBOX_APP_SECRET: 'secret' })).toBeDefined();
  });
});

describe('loadConfig never echoes a secret it refuses', () => {
  // The start-up error goes to stderr, which ends up in the same log store as everything else.
  it('an ADMIN_TOKEN too short is named, not printed', () => {
    const message = refused({ ADMIN_TOKEN: 'hunter2-admin' });
    expect(message).toMatch(/^invalid configuration: ADMIN_TOKEN /);
    expect(message).toContain('at least 16 characters');
    expect(message).not.toContain('hunter2');
  });

  // Made from a file, a secret often ends in a newline: every request (401) or every webhook's
  // signature (403) then failed, with nothing saying why.
  it.each(['ADMIN_TOKEN', 'DROPBOX_APP_SECRET', 'DROPBOX_APP_KEY'])('%s with a line break at its end is refused (a secret without its value)', (variable) => {
    const message = refused({ [variable]: 'hunter2-a-long-enough-secret\n', ...(variable === 'DROPBOX_APP_SECRET' ? {} : { DROPBOX_APP_SECRET: 'secret' }) });
    expect(message).toMatch(new RegExp(`^invalid configuration: ${variable} .*has spaces or a line break at its start or end`));
    // The app key is no secret (it is in every authorize URL); the other two are.
    if (variable !== 'DROPBOX_APP_KEY') expect(message).not.toContain('hunter2');
  });

  it('a REDIS_URL that is no redis:// URL is refused without its password', () => {
    const message = refused({ REDIS_URL: 'http://mailroom:hunter2-redis-pass@redis.internal:6379' });
    expect(message).toMatch(/^invalid configuration: REDIS_URL /);
    expect(message).toContain('redis.internal');
    expect(message).not.toContain('hunter2');
  });
});
