import { describe, expect, it } from 'vitest';
import { ApiClient, type AccountStatus } from '../../src/cli/api-client.js';
import { parseInvocation } from '../../src/cli/args.js';
import { runCommand, type CliIO } from '../../src/cli/commands.js';
import { runMain } from './run-cli.js';
import { formatAccounts, formatEntries, formatStatus, formatTailLine } from '../../src/cli/format.js';

const NOW = Date.parse('2024-05-01T10:00:00.000Z');
const status = (over: Partial<AccountStatus> = {}): AccountStatus => ({
  accountId: 'dbid:a',
  state: 'idle',
  dirty: false,
  pending: 0,
  setAside: 0,
  setAsideFiles: [],
  folder: '/data/mirrors/dbid:a',
  lastSyncedAt: '2024-05-01T09:59:55.000Z',
  lastError: null,
  ...over,
});

/**
 * A fake terminal and a scripted server: what `GET /accounts/:id` answers in turn, a status, another
 * response, or 'refused' (the connection is refused: the server is restarting).
 */
function fakeWorld(statuses: (AccountStatus | Response | 'refused')[], options: { tty?: boolean; listed?: AccountStatus[] } = {}) {
  let out = '';
  let err = '';
  let clock = NOW;
  let polls = 0;
  const io: CliIO = {
    stdout: { write: (t: string) => { out += t; }, isTTY: options.tty },
    stderr: { write: (t: string) => { err += t; } },
    readStdin: async () => '',
    now: () => clock,
    sleep: async (ms) => { clock += ms; },
    catchInterrupt: () => ({ signal: new AbortController().signal, dispose: () => {} }),
  };
  const fakeFetch = (async (url: string | URL | Request, init?: RequestInit) => {
    const path = new URL(String(url)).pathname;
    if (init?.method === 'PUT') return Response.json(status({ state: 'fetching', lastSyncedAt: null }));
    if (init?.method === 'DELETE') return new Response(null, { status: 204 });
    if (init?.method === 'POST' && path.endsWith('/resync')) return Response.json({ accountId: 'dbid:a', resync: 'requested' }, { status: 202 });
    if (path === '/accounts') return Response.json({ accounts: options.listed ?? [] });
    if (path === '/accounts/dbid%3Aa' || path === '/accounts/dbid:a') {
      const next = statuses[Math.min(polls, statuses.length - 1)]!;
      polls++;
      if (next === 'refused') throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      return next instanceof Response ? next.clone() : Response.json(next);
    }
    return Response.json({ error: 'not_found', message: 'no' }, { status: 404 });
  }) as typeof fetch;
  const client = new ApiClient('http://server', 'token', { fetch: fakeFetch });
  return { io, client, output: () => out, errors: () => err };
}

describe('link --wait (in process, scripted server)', () => {
  it('redraws one line on a terminal and ends it when the sync is idle', async () => {
    const world = fakeWorld([
      status({ lastSyncedAt: null }), // before the link: never synced
      status({ state: 'fetching', lastSyncedAt: null }),
      status({ state: 'downloading', pending: 4, lastSyncedAt: null }),
      status({ state: 'downloading', pending: 2, lastSyncedAt: null }),
      status({ state: 'idle', pending: 0, lastSyncedAt: '2024-05-01T10:00:01.000Z' }),
    ], { tty: true });
    const code = await runCommand({ name: 'link', account: 'dbid:a', accessToken: 't', ignore: [], wait: true }, { client: world.client, io: world.io, json: false });
    expect(code).toBe(0);
    const frames = world.output().split('\r').slice(1).map((f) => f.replace(/\x1b\[K/g, ''));
    expect(frames.map((f) => f.split('\n')[0])).toEqual([
      'dbid:a  fetching  listing…  0ms',
      'dbid:a  downloading  [------------------------]  0/4 files  0%  250ms',
      'dbid:a  downloading  [############------------]  2/4 files  50%  500ms',
      'dbid:a  idle  [########################]  4/4 files  100%  750ms',
    ]);
    expect(world.output().endsWith('\ndbid:a is in sync (2024-05-01T10:00:01.000Z); mirror: /data/mirrors/dbid:a\n')).toBe(true);
  });

  it('a re-link waits for a run that ends after the link, not the previous one', async () => {
    const old = '2024-05-01T09:00:00.000Z';
    const world = fakeWorld([
      status({ lastSyncedAt: old }),
      status({ state: 'idle', lastSyncedAt: old }),
      status({ state: 'idle', lastSyncedAt: old }),
      status({ state: 'idle', lastSyncedAt: '2024-05-01T10:00:00.500Z' }),
    ]);
    expect(await runCommand({ name: 'link', account: 'dbid:a', accessToken: 't', ignore: [], wait: true }, { client: world.client, io: world.io, json: false })).toBe(0);
    expect(world.output()).toContain('is in sync (2024-05-01T10:00:00.500Z)');
  });

  it('a re-link of an account awaiting one waits past the refusal from before the link, and stops at a new one', async () => {
    const refusedBefore = { kind: 'auth', message: 'invalid_access_token', at: '2024-05-01T09:00:00.000Z' };
    const awaiting = status({ state: 'awaitingRelink', lastSyncedAt: null, lastError: refusedBefore });
    // The wake of the re-link is still on its way: the first polls show the old refusal.
    const relinked = fakeWorld([awaiting, awaiting, awaiting, status({ state: 'fetching', lastSyncedAt: null }), status({ state: 'idle', lastSyncedAt: '2024-05-01T10:00:01.000Z' })]);
    expect(await runCommand({ name: 'link', account: 'dbid:a', accessToken: 't', ignore: [], wait: true, timeoutMs: 60_000 }, { client: relinked.client, io: relinked.io, json: false })).toBe(0);

    const refusedAgain = status({ state: 'awaitingRelink', lastSyncedAt: null, lastError: { ...refusedBefore, at: '2024-05-01T10:00:00.200Z' } });
    const stillBad = fakeWorld([awaiting, awaiting, refusedAgain]);
    await expect(runCommand({ name: 'link', account: 'dbid:a', accessToken: 't', ignore: [], wait: true, timeoutMs: 60_000 }, { client: stillBad.client, io: stillBad.io, json: false }))
      .rejects.toMatchObject({ exitCode: 4, message: 'Dropbox refused the credentials of dbid:a (invalid_access_token); link it again with a valid token' });
  });

  it('reports retries on stderr and gives up after --timeout with exit 4', async () => {
    const failing = status({ state: 'backoff', lastSyncedAt: null, lastError: { kind: 'dropbox_unavailable', message: 'HTTP 503', at: '2024-05-01T10:00:00.000Z' } });
    const world = fakeWorld([status({ lastSyncedAt: null }), failing]);
    await expect(runCommand({ name: 'link', account: 'dbid:a', accessToken: 't', ignore: [], wait: true, timeoutMs: 1_000 }, { client: world.client, io: world.io, json: false }))
      .rejects.toMatchObject({ exitCode: 4, message: 'gave up waiting after 1s; the sync goes on in the server (state: backoff, pending: 0, last error: dropbox_unavailable: HTTP 503)' });
    expect(world.errors()).toBe('retrying after dropbox_unavailable: HTTP 503\n');
  });
});

describe('the server out for a moment (in process, scripted server)', () => {
  const redisDown = Response.json({ error: 'unavailable', message: 'Redis is unreachable; retry shortly' }, { status: 503 });
  const gone = Response.json({ error: 'not_linked', message: 'not linked' }, { status: 404 });

  it('tail keeps asking through a 503 and a restart, saying so once each time', async () => {
    const world = fakeWorld([status(), redisDown, redisDown, 'refused', status({ state: 'fetching' }), gone]);
    await expect(runCommand({ name: 'tail', account: 'dbid:a', intervalMs: 1_000 }, { client: world.client, io: world.io, json: false }))
      .rejects.toMatchObject({ message: 'dbid:a is no longer linked' });
    expect(world.errors()).toBe('Redis is unreachable; retry shortly; retrying\nserver answering again\n');
    expect(world.output()).toMatch(/ idle +pending=0 .*\n.* fetching +pending=0 /);
  });

  it('link --wait waits through a restart of the server and ends when the sync does', async () => {
    const world = fakeWorld([
      status({ lastSyncedAt: null }),
      status({ state: 'downloading', pending: 50, lastSyncedAt: null }),
      'refused',
      redisDown,
      status({ state: 'idle', pending: 0, lastSyncedAt: '2024-05-01T10:01:00.000Z' }),
    ]);
    const code = await runCommand({ name: 'link', account: 'dbid:a', accessToken: 't', ignore: [], wait: true }, { client: world.client, io: world.io, json: false });
    expect(code).toBe(0);
    expect(world.errors()).toMatch(/^cannot reach the Mailroom server at http:\/\/server .*; retrying\nserver answering again\n$/);
  });

  it('link --wait still gives up at --timeout while the server cannot be asked', async () => {
    const world = fakeWorld([status({ lastSyncedAt: null }), 'refused']);
    await expect(runCommand({ name: 'link', account: 'dbid:a', accessToken: 't', ignore: [], wait: true, timeoutMs: 5_000 }, { client: world.client, io: world.io, json: false }))
      .rejects.toMatchObject({ exitCode: 4, message: expect.stringMatching(/^gave up waiting after 5s; the server could not be asked \(cannot reach/) });
  });
});

describe('formatting', () => {
  it('one account', () => {
    expect(formatStatus(status({ lastError: { kind: 'auth', message: 'invalid_access_token', at: '2024-05-01T09:00:00.000Z' }, state: 'backoff' }), NOW)).toBe(
      [
        'dbid:a',
        '  state        backoff',
        '  pending      0 downloads',
        '  dirty        no',
        '  last synced  2024-05-01T09:59:55.000Z (5s ago)',
        '  last error   auth: invalid_access_token (2024-05-01T09:00:00.000Z (1h00m ago))',
        '  folder       /data/mirrors/dbid:a',
        'Dropbox refused the credentials: re-link the account (mailroom link <account> --refresh-token …).',
      ].join('\n'),
    );
  });

  it('one account with files set aside: how many, each listed one with its reason', () => {
    const aside = (path: string) => ({ path, kind: 'filesystem', message: `EISDIR: illegal operation on a directory, rename '…${path}'`, at: '2024-05-01T09:00:00.000Z' });
    const text = formatStatus(status({ setAside: 3, setAsideFiles: [aside('/a.md'), aside('/b.md')] }), NOW);
    expect(text.split('\n').slice(2, 6)).toEqual([
      '  pending      0 downloads',
      '  set aside    3 files that cannot be written at their paths (a change to one or a resync tries again)',
      "               /a.md: filesystem: EISDIR: illegal operation on a directory, rename '…/a.md'",
      "               /b.md: filesystem: EISDIR: illegal operation on a directory, rename '…/b.md'",
    ]);
    expect(text.split('\n')[6]).toBe('               … and 1 more');
    expect(formatTailLine(status({ setAside: 3 }), undefined, NOW)).toContain('pending=0  set-aside=3  error=-');
  });

  it('writes the control characters of text from Dropbox as \\xNN: a post cannot drive the terminal', () => {
    const title = '\x1b]0;PWNED\x07\x1b[2J\x1b[31mRed title\u009b';
    const text = formatEntries([{ id: 'e1', path: '/esc.md', title, html: '', created: 0, updated: Date.parse('2024-05-01T10:00:00Z') }]);
    // eslint-disable-next-line no-control-regex
    expect(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(text)).toBe(false); // no control character but the line break
    expect(text.split('\n')[1]).toContain('\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mRed title\\x9b');
    const failing = status({ state: 'backoff', lastError: { kind: 'internal', message: 'bad \x1b[2J name', at: '2024-05-01T09:00:00.000Z' } });
    expect(formatTailLine(failing, undefined, NOW)).toContain('error=internal: bad \\x1b[2J name');
    expect(formatStatus(failing, NOW)).toContain('last error   internal: bad \\x1b[2J name');
  });

  it('all accounts, and none', () => {
    expect(formatAccounts([status(), status({ accountId: 'dbid:bb', state: 'downloading', dirty: true, pending: 12, lastSyncedAt: null })], NOW)).toBe(
      [
        'ACCOUNT  STATE         PENDING  LAST SYNCED  LAST ERROR',
        'dbid:a   idle          0        5s ago       -',
        'dbid:bb  downloading*  12       never        -',
        '* a change is waiting to be listed',
      ].join('\n'),
    );
    expect(formatAccounts([], NOW)).toMatch(/^no accounts linked/);
    const refused = { kind: 'auth', message: 'invalid_access_token', at: '2024-05-01T09:00:00.000Z' };
    expect(formatAccounts([status({ state: 'awaitingRelink', dirty: true, lastError: refused }), status({ accountId: 'dbid:bb' })], NOW).split('\n').slice(2)).toEqual([
      'dbid:bb  idle             0        5s ago       -',
      '* a change is waiting to be listed',
      '1 account awaiting a re-link: Dropbox refused the credentials (mailroom link <account> …, or mailroom link-url)',
    ]);
  });

  it('a tail line notes a finished run', () => {
    expect(formatTailLine(status({ lastSyncedAt: '2024-05-01T10:00:00.000Z' }), status(), NOW)).toBe(
      '2024-05-01T10:00:00.000Z  dbid:a  idle            pending=0  error=-  synced 2024-05-01T10:00:00.000Z',
    );
  });
});

describe('parseInvocation', () => {
  it('takes the URL and token from options before the environment', () => {
    const env = { MAILROOM_URL: 'http://env:1/', ADMIN_TOKEN: 'env-token' };
    expect(parseInvocation(['status'], env)).toMatchObject({ url: 'http://env:1', token: 'env-token', command: { name: 'status' } });
    expect(parseInvocation(['status', '--url', 'https://cli:2', '--token', 'cli-token'], env)).toMatchObject({ url: 'https://cli:2', token: 'cli-token' });
    expect(parseInvocation(['status'], { ADMIN_TOKEN: 't' }).url).toBe('http://127.0.0.1:8080');
  });

  it('status --state lists only that state, even from a server that ignores ?state= and lists everyone', async () => {
    const world = fakeWorld([], { listed: [status({ accountId: 'dbid:a' }), status({ accountId: 'dbid:b', state: 'awaitingRelink' })] });
    expect(await runCommand({ name: 'status', state: 'awaitingRelink' }, { client: world.client, io: world.io, json: false })).toBe(0);
    const rows = world.output().split('\n');
    expect(rows[1]).toMatch(/^dbid:b +awaitingRelink /);
    expect(world.output()).not.toContain('dbid:a ');
  });

  it('takes --state with status alone, not with an account', () => {
    expect(parseInvocation(['status', '--state', 'awaitingRelink'], { ADMIN_TOKEN: 't' }).command).toEqual({ name: 'status', account: undefined, state: 'awaitingRelink' });
    expect(() => parseInvocation(['status', 'dbid:a', '--state', 'idle'], { ADMIN_TOKEN: 't' })).toThrow(/goes without an account/);
    expect(() => parseInvocation(['entries', 'dbid:a', '--state', 'idle'], { ADMIN_TOKEN: 't' })).toThrow(/does not take --state/);
  });

  it('a value-taking option given twice is a usage error naming it (exit 2), never the last one silently; its values are not echoed', async () => {
    const cases: [string[], string][] = [
      [['status', '--url', 'http://one:1', '--url', 'http://two:2'], '--url'],
      [['status', '--token', 'secret-one', '--token', 'secret-two'], '--token'],
      [['status', '--state', 'idle', '--state', 'backoff'], '--state'],
      [['link', 'dbid:a', '--refresh-token', 'secret-one', '--refresh-token', 'secret-two'], '--refresh-token'],
      [['link', 'dbid:a', '--access-token=secret-one', '--access-token', 'secret-two'], '--access-token'],
      [['link', 'dbid:a', '--access-token', 'a', '--wait', '--timeout', '1', '--timeout', '2'], '--timeout'],
      [['tail', 'dbid:a', '--interval', '100', '--interval', '200'], '--interval'],
    ];
    for (const [argv, flag] of cases) {
      const result = await runMain(argv, { ADMIN_TOKEN: 't' });
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stderr.split('\n')[0]).toBe(`mailroom: ${flag} was given 2 times; it takes one value`);
      expect(result.stderr).not.toContain('secret-');
      expect(result.stdout).toBe('');
    }
    // Flags that mean the same given twice, and --ignore, which repeats, stay as they were.
    expect(parseInvocation(['status', '--json', '--json'], { ADMIN_TOKEN: 't' }).json).toBe(true);
    expect(parseInvocation(['link', 'dbid:a', '--access-token', 'a', '--ignore', 'x/**', '--ignore', 'y/**'], { ADMIN_TOKEN: 't' }).command).toMatchObject({ ignore: ['x/**', 'y/**'] });
  });

  it('unlink and resync print a JSON object under --json, text otherwise', async () => {
    const unlinked = fakeWorld([]);
    expect(await runCommand({ name: 'unlink', account: 'dbid:a' }, { client: unlinked.client, io: unlinked.io, json: true })).toBe(0);
    expect(JSON.parse(unlinked.output())).toEqual({ accountId: 'dbid:a', unlinked: true });
    const resynced = fakeWorld([]);
    expect(await runCommand({ name: 'resync', account: 'dbid:a' }, { client: resynced.client, io: resynced.io, json: true })).toBe(0);
    expect(JSON.parse(resynced.output())).toEqual({ accountId: 'dbid:a', resync: 'requested' });
    const text = fakeWorld([]);
    expect(await runCommand({ name: 'resync', account: 'dbid:a' }, { client: text.client, io: text.io, json: false })).toBe(0);
    expect(text.output()).toMatch(/^resync requested for dbid:a: /);
  });

  it('collects repeated --ignore and converts --timeout to ms', () => {
    expect(parseInvocation(['link', 'dbid:a', '--refresh-token', 'r', '--ignore', 'a/**', '--ignore', 'b/**', '--wait', '--timeout', '1.5'], { ADMIN_TOKEN: 't' }).command).toEqual({
      name: 'link', account: 'dbid:a', accessToken: undefined, refreshToken: 'r', ignore: ['a/**', 'b/**'], wait: true, timeoutMs: 1500,
    });
  });
});
