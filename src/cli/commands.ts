import { ApiError, GaveUpError, UnreachableError, UsageError, type ExitCode, EXIT } from './errors.js';
import type { AccountStatus, ApiClient } from './api-client.js';
import type { Command } from './args.js';
import { formatAccounts, formatEntries, formatError, formatStartLink, formatStatus, formatTailLine, tailKey } from './format.js';
import { printable } from './printable.js';
import { advanceProgress, INITIAL_PROGRESS, renderSyncProgress, worthALine } from './progress.js';

/** The outside world of a command: replaced in tests, `processIO()` in the real CLI. */
export interface CliIO {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown };
  /** All of stdin (for `--access-token -`). */
  readStdin(): Promise<string>;
  now(): number;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Ctrl-C aborts the returned signal (instead of killing the process) until `dispose`. */
  catchInterrupt(): { signal: AbortSignal; dispose(): void };
}

export interface CommandContext {
  client: ApiClient;
  io: CliIO;
  json: boolean;
}

const WAIT_POLL_MS = 250;

export async function runCommand(command: Exclude<Command, { name: 'help' }>, ctx: CommandContext): Promise<ExitCode> {
  switch (command.name) {
    case 'status':
      return command.account === undefined ? statusAll(ctx, command.state) : statusOne(command.account, ctx);
    case 'link':
      return link(command, ctx);
    case 'link-url': {
      const link = await ctx.client.startLink();
      print(ctx, ctx.json ? JSON.stringify(link, null, 2) : formatStartLink(link));
      return EXIT.ok;
    }
    case 'unlink':
      await ctx.client.unlink(command.account).catch(notLinkedHint(command.account));
      // The server answers 204, no body: the object says what happened, as the text does.
      print(ctx, ctx.json ? JSON.stringify({ accountId: command.account, unlinked: true }, null, 2) : `unlinked ${command.account}; its mirror and entries stay (link it again to continue from where it stopped)`);
      return EXIT.ok;
    case 'resync':
      await ctx.client.resync(command.account).catch(notLinkedHint(command.account));
      // The server's 202 body, built here: the client does not check that body, so it does not print it.
      print(ctx, ctx.json ? JSON.stringify({ accountId: command.account, resync: 'requested' }, null, 2) : `resync requested for ${command.account}: the next listing is a full one, checked against the mirror`);
      return EXIT.ok;
    case 'entries': {
      const { entries } = await ctx.client.entries(command.account).catch(notLinkedHint(command.account));
      print(ctx, ctx.json ? JSON.stringify({ entries }, null, 2) : formatEntries(entries));
      return EXIT.ok;
    }
    case 'tail':
      return tail(command.account, command.intervalMs, ctx);
  }
}

async function statusAll(ctx: CommandContext, state?: string): Promise<ExitCode> {
  // Filtered here too: a server from before `?state=` ignores it and lists everyone.
  const accounts = (await ctx.client.listAccounts(state)).accounts.filter((a) => state === undefined || a.state === state);
  if (state !== undefined && accounts.length === 0 && !ctx.json) {
    print(ctx, `no account is ${state}`);
    return EXIT.ok;
  }
  accounts.sort((a, b) => a.accountId.localeCompare(b.accountId));
  print(ctx, ctx.json ? JSON.stringify({ accounts }, null, 2) : formatAccounts(accounts, ctx.io.now()));
  return EXIT.ok;
}

async function statusOne(accountId: string, ctx: CommandContext): Promise<ExitCode> {
  const status = await requireStatus(accountId, ctx);
  print(ctx, ctx.json ? JSON.stringify(status, null, 2) : formatStatus(status, ctx.io.now()));
  return EXIT.ok;
}

async function link(command: Extract<Command, { name: 'link' }>, ctx: CommandContext): Promise<ExitCode> {
  const fromStdin = command.accessToken === '-' || command.refreshToken === '-' ? (await ctx.io.readStdin()).trim() : undefined;
  if (fromStdin === '') throw new UsageError('no token on stdin (--access-token - or --refresh-token - reads it from there)');
  const accessToken = command.accessToken === '-' ? fromStdin : command.accessToken;
  const refreshToken = command.refreshToken === '-' ? fromStdin : command.refreshToken;
  // What "this link's sync finished" means: a run ended after the link (lastSyncedAt moved on).
  const before = command.wait ? await ctx.client.status(command.account) : null;
  const status = await ctx.client.link(command.account, {
    ...(accessToken ? { accessToken } : {}),
    ...(refreshToken ? { refreshToken } : {}),
    ...(command.ignore.length ? { ignore: command.ignore } : {}),
  });
  if (!command.wait) {
    print(ctx, ctx.json ? JSON.stringify(status, null, 2) : `linked ${command.account}; syncing (state: ${status.state}). Follow it with: mailroom tail ${command.account}`);
    return EXIT.ok;
  }
  if (!ctx.json) print(ctx, `linked ${command.account}; waiting for the sync to finish (Ctrl-C stops waiting, not the sync)`);
  const final = await waitForSync(command.account, { lastSyncedAt: before?.lastSyncedAt ?? null, errorAt: before?.lastError?.at ?? null }, command.timeoutMs, ctx);
  print(ctx, ctx.json ? JSON.stringify(final, null, 2) : `${command.account} is in sync (${final.lastSyncedAt}); mirror: ${final.folder}`);
  return EXIT.ok;
}

/**
 * Polls the status, drawing the progress, until a run ended after the link (`before.lastSyncedAt`)
 * and nothing is left. The credentials' refusal from before the link (`before.errorAt`) is not this
 * link's: the account may still show it until its wake arrives.
 */
async function waitForSync(accountId: string, before: { lastSyncedAt: string | null; errorAt: string | null }, timeoutMs: number | undefined, ctx: CommandContext): Promise<AccountStatus> {
  const { io } = ctx;
  const started = io.now();
  const tty = Boolean(io.stdout.isTTY) && !ctx.json;
  let counts = INITIAL_PROGRESS;
  let lastDrawn: { state: string; done: number; total: number } | undefined;
  let lastReported = '';
  const interrupt = io.catchInterrupt();
  const endLine = () => { if (tty && lastDrawn) io.stdout.write('\n'); };
  let passing = '';
  try {
    for (;;) {
      let status: AccountStatus | null;
      try {
        status = await ctx.client.status(accountId);
      } catch (error) {
        // The server restarting, or its Redis down for a moment: the sync goes on; keep asking.
        if (!isPassing(error)) throw error;
        if (!passing) {
          endLine();
          lastDrawn = undefined;
          io.stderr.write(`${(error as Error).message}; retrying\n`);
        }
        passing = (error as Error).message;
        if (timeoutMs !== undefined && io.now() - started >= timeoutMs) {
          throw new GaveUpError(`gave up waiting after ${Math.round(timeoutMs / 1000)}s; the server could not be asked (${passing})`);
        }
        await io.sleep(WAIT_POLL_MS, interrupt.signal);
        if (interrupt.signal.aborted) throw new GaveUpError('stopped waiting (Ctrl-C); the sync goes on in the server');
        continue;
      }
      if (passing) io.stderr.write('server answering again\n');
      passing = '';
      if (!status) throw new ApiError(404, 'not_linked', `${accountId} was unlinked while waiting`);
      counts = advanceProgress(counts, status.pending);
      const view = { accountId, state: status.state, done: counts.done, total: counts.total, elapsedMs: io.now() - started };
      if (!ctx.json) {
        if (tty) io.stdout.write(`\r${renderSyncProgress(view)}\x1b[K`);
        else if (worthALine(lastDrawn, view)) io.stdout.write(`${renderSyncProgress(view)}\n`);
        lastDrawn = view;
      }
      if (status.lastError && (status.state === 'backoff' || status.state === 'awaitingRelink')) {
        if (status.lastError.kind === 'auth' && status.lastError.at !== before.errorAt) {
          endLine();
          throw new GaveUpError(`Dropbox refused the credentials of ${accountId} (${printable(status.lastError.message)}); link it again with a valid token`);
        }
        const report = printable(`${status.lastError.kind}: ${status.lastError.message}`);
        if (report !== lastReported) {
          if (tty) io.stdout.write('\n');
          io.stderr.write(`retrying after ${report}\n`);
          lastReported = report;
        }
      }
      if (status.state === 'idle' && !status.dirty && status.pending === 0 && status.lastSyncedAt !== null && status.lastSyncedAt !== before.lastSyncedAt) {
        endLine();
        return status;
      }
      if (timeoutMs !== undefined && io.now() - started >= timeoutMs) {
        endLine();
        throw new GaveUpError(`gave up waiting after ${Math.round(timeoutMs / 1000)}s; the sync goes on in the server (state: ${status.state}, pending: ${status.pending}, last error: ${formatError(status.lastError)})`);
      }
      await io.sleep(WAIT_POLL_MS, interrupt.signal);
      if (interrupt.signal.aborted) {
        endLine();
        throw new GaveUpError('stopped waiting (Ctrl-C); the sync goes on in the server');
      }
    }
  } finally {
    interrupt.dispose();
  }
}

/** One line per change of state, pending downloads, last error or last sync, until Ctrl-C. */
async function tail(accountId: string, intervalMs: number, ctx: CommandContext): Promise<ExitCode> {
  const { io } = ctx;
  let previous = await requireStatus(accountId, ctx);
  const line = (status: AccountStatus, before: AccountStatus | undefined) =>
    print(ctx, ctx.json ? JSON.stringify({ at: new Date(io.now()).toISOString(), ...status }) : formatTailLine(status, before, io.now()));
  line(previous, undefined);
  const interrupt = io.catchInterrupt();
  let unreachable = false;
  try {
    for (;;) {
      await io.sleep(intervalMs, interrupt.signal);
      if (interrupt.signal.aborted) return EXIT.ok;
      let status: AccountStatus | null;
      try {
        status = await ctx.client.status(accountId);
      } catch (error) {
        // A server restart, or its Redis down for a moment, should not end the tail: say so once, keep asking.
        if (!isPassing(error)) throw error;
        if (!unreachable) io.stderr.write(`${(error as Error).message}; retrying\n`);
        unreachable = true;
        continue;
      }
      if (unreachable) io.stderr.write('server answering again\n');
      unreachable = false;
      if (!status) throw new ApiError(404, 'not_linked', `${accountId} is no longer linked`);
      if (tailKey(status) !== tailKey(previous)) line(status, previous);
      previous = status;
    }
  } finally {
    interrupt.dispose();
  }
}

/** A failure the server gets over by itself: it is restarting (unreachable), or answers 502-504 (its Redis is down for a moment). */
function isPassing(error: unknown): boolean {
  return error instanceof UnreachableError || (error instanceof ApiError && error.status >= 502 && error.status <= 504);
}

async function requireStatus(accountId: string, ctx: CommandContext): Promise<AccountStatus> {
  const status = await ctx.client.status(accountId);
  if (!status) throw new ApiError(404, 'not_linked', `${accountId} is not linked (mailroom link ${accountId} --access-token … links it)`);
  return status;
}

/** The server's 404 names its HTTP route; an operator of the CLI wants the command instead. */
function notLinkedHint(accountId: string) {
  return (error: unknown): never => {
    if (error instanceof ApiError && error.status === 404 && error.code === 'not_linked') {
      throw new ApiError(404, 'not_linked', `${accountId} is not linked (mailroom link ${accountId} --access-token … links it)`);
    }
    throw error;
  };
}

function print(ctx: CommandContext, text: string): void {
  ctx.io.stdout.write(`${text}\n`);
}
