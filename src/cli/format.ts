import type { AccountStatus, Entry, StartLink } from './api-client.js';
import { printable } from './printable.js';
import { formatDuration } from './progress.js';

/** `2024-05-01T10:00:00.000Z (3m05s ago)`, or `never`. */
export function formatTime(iso: string | null, now: number): string {
  if (!iso) return 'never';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  return `${iso} (${formatDuration(Math.max(0, now - at))} ago)`;
}

export function formatError(error: AccountStatus['lastError']): string {
  return error ? printable(`${error.kind}: ${error.message}`) : '-';
}

/** One account, one field per line. */
export function formatStatus(status: AccountStatus, now: number): string {
  const rows: [string, string][] = [
    ['state', printable(status.state)],
    ['pending', `${status.pending} download${status.pending === 1 ? '' : 's'}`],
    ...setAsideRows(status),
    ['dirty', status.dirty ? 'yes (a change is waiting to be listed)' : 'no'],
    ['last synced', formatTime(status.lastSyncedAt, now)],
    ['last error', status.lastError ? `${formatError(status.lastError)} (${formatTime(status.lastError.at, now)})` : '-'],
    ['folder', printable(status.folder)],
  ];
  const hint = status.lastError?.kind === 'auth' ? '\nDropbox refused the credentials: re-link the account (mailroom link <account> --refresh-token …).' : '';
  return `${status.accountId}\n${rows.map(([k, v]) => `  ${k.padEnd(13)}${v}`).join('\n')}${hint}`;
}

/** Files no retry could write at their path: how many, then each listed one on a line of its own. */
function setAsideRows(status: AccountStatus): [string, string][] {
  // A server from before set-aside files answers without the field.
  const count = status.setAside ?? 0;
  if (count === 0) return [];
  const listed = status.setAsideFiles ?? [];
  const rows: [string, string][] = [['set aside', `${count} file${count === 1 ? '' : 's'} that cannot be written at ${count === 1 ? 'its path' : 'their paths'} (a change to ${count === 1 ? 'it' : 'one'} or a resync tries again)`]];
  for (const file of listed) rows.push(['', printable(`${file.path}: ${file.kind}: ${file.message}`)]);
  if (listed.length < count) rows.push(['', `… and ${count - listed.length} more`]);
  return rows;
}

/** Every account, one row each. */
export function formatAccounts(accounts: AccountStatus[], now: number): string {
  if (accounts.length === 0) return 'no accounts linked (mailroom link <account> --access-token … links one)';
  const header = ['ACCOUNT', 'STATE', 'PENDING', 'LAST SYNCED', 'LAST ERROR'];
  const rows = accounts.map((a) => [
    a.accountId,
    a.state + (a.dirty ? '*' : ''),
    String(a.pending),
    a.lastSyncedAt ? `${formatDuration(Math.max(0, now - Date.parse(a.lastSyncedAt)))} ago` : 'never',
    a.lastError ? a.lastError.kind : '-',
  ]);
  const notes = [];
  if (accounts.some((a) => a.dirty)) notes.push('* a change is waiting to be listed');
  const awaiting = accounts.filter((a) => a.state === 'awaitingRelink').length;
  // Nothing retries these: only a person can give them credentials Dropbox accepts.
  if (awaiting) notes.push(`${awaiting} account${awaiting === 1 ? '' : 's'} awaiting a re-link: Dropbox refused the credentials (mailroom link <account> …, or mailroom link-url)`);
  return [table([header, ...rows]), ...notes].join('\n');
}

/** The link alone on the first line (to copy, or `| head -1`), then what to do with it. */
export function formatStartLink(link: StartLink): string {
  return `${printable(link.url)}\nopen it in a browser within ${formatDuration(link.expiresInMs)}; it works once, and links (or re-links) the Dropbox account signed in there`;
}

export function formatEntries(entries: Entry[]): string {
  if (entries.length === 0) return 'no entries';
  return table([['PATH', 'TITLE', 'UPDATED'], ...entries.map((e) => [e.path, e.title, new Date(e.updated).toISOString()])]);
}

/** What `tail` compares between polls: a line is printed when any of it changes. */
export function tailKey(status: AccountStatus): string {
  return JSON.stringify([status.state, status.pending, status.setAside ?? 0, status.lastError?.at ?? null, status.lastError?.message ?? null, status.lastSyncedAt]);
}

/** `2024-05-01T10:00:00.000Z  dbid:x  downloading     pending=12  error=-` (+ `synced` when a run just ended); the state padded to the longest, awaitingRelink. */
export function formatTailLine(status: AccountStatus, previous: AccountStatus | undefined, now: number): string {
  const parts = [new Date(now).toISOString(), status.accountId, printable(status.state).padEnd(14), `pending=${status.pending}`];
  if (status.setAside) parts.push(`set-aside=${status.setAside}`);
  parts.push(`error=${status.lastError ? formatError(status.lastError) : '-'}`);
  if (previous && status.lastSyncedAt && status.lastSyncedAt !== previous.lastSyncedAt) parts.push(`synced ${status.lastSyncedAt}`);
  return parts.join('  ');
}

function table(cells: string[][]): string {
  const rows = cells.map((row) => row.map(printable));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}
