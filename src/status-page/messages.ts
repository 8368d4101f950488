import type { AccountStatus } from '../engine/engine.js';
import type { RunProgress } from './progress-tracker.js';

/** What the page shows of one account: its status plus the progress of its current (or last) run. */
export interface AccountView extends AccountStatus {
  progress: RunProgress | null;
  /** `progress` as the page prints it, e.g. `12 / 80 files · 1.2 MB`. */
  progressText: string;
}

/** The messages of `GET /events`, each one SSE `data:` line of JSON. */
export type StatusMessage =
  /**
   * First message of every connection: the accounts shown (at most the hub's maxAccounts, see
   * StatusHub) and how many are linked in all.
   */
  | { type: 'snapshot'; at: string; linked: number; accounts: AccountView[] }
  /** The number of linked accounts changed (told by a refresh). */
  | { type: 'linked'; at: string; linked: number }
  /** One account changed (state, progress, dirty, queue, last sync or error): replaces its view. */
  | { type: 'account'; at: string; account: AccountView }
  /** A state change as it happened (the page keeps a short trail of them). */
  | { type: 'transition'; at: string; accountId: string; from: string; to: string; durationMs: number }
  /** The account is no longer shown: unlinked, or its slot went to a more recently active account. */
  | { type: 'removed'; at: string; accountId: string };

/** One SSE event: `event:` names the message type, `data:` holds it as JSON (one line: JSON escapes newlines). */
export function formatSse(message: StatusMessage, id?: number): string {
  const lines = [`event: ${message.type}`];
  if (id !== undefined) lines.push(`id: ${id}`);
  for (const line of JSON.stringify(message).split('\n')) lines.push(`data: ${line}`);
  return `${lines.join('\n')}\n\n`;
}

/** An SSE comment: ignored by EventSource, keeps proxies and idle timeouts from closing the stream. */
export function sseComment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`;
}

/** The first line of the stream: how long EventSource waits before reconnecting on its own. */
export function sseRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.round(ms))}\n\n`;
}

export function accountView(status: AccountStatus, progress: RunProgress | null, liveState?: string): AccountView {
  return { ...status, state: liveState ?? status.state, progress, progressText: progressText(progress) };
}

/** `12 / 80 files · 1.2 MB` (or `12 files` before the total is known); what the page prints too. */
export function progressText(progress: RunProgress | null): string {
  if (!progress) return 'no run seen yet';
  const files = progress.total === null ? `${progress.done} files` : `${progress.done} / ${progress.total} files`;
  const failed = progress.failed ? ` · ${progress.failed} failed` : '';
  return `${files} · ${formatBytes(progress.bytes)}${failed}`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
