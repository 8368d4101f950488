import { readdirSync, readFileSync } from 'node:fs';

/** A process as its /proc/<pid>/stat line describes it (Linux). */
export interface ProcessInfo {
  pid: number;
  /** The command name (`comm`), e.g. "redis-server". */
  name: string;
  /** "R", "S", …; "Z" for a zombie, which has exited. */
  state: string;
  ppid: number;
  pgid: number;
}

/** Every process /proc lists now; one gone while it is read is left out. */
export function processes(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = processInfo(Number(name));
    if (info) found.push(info);
  }
  return found;
}

/** The process `pid` now, or undefined when there is none. */
export function processInfo(pid: number): ProcessInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The name is in parentheses and may hold spaces or parentheses itself: the last ") " ends it.
  const match = /^(\d+) \((.*)\) (\S) (\d+) (\d+)/.exec(stat);
  return match ? { pid: Number(match[1]), name: match[2]!, state: match[3]!, ppid: Number(match[4]), pgid: Number(match[5]) } : undefined;
}

/** Whether `pid` is a live process (a zombie has exited). */
export function isAlive(pid: number): boolean {
  const info = processInfo(pid);
  return info !== undefined && info.state !== 'Z';
}
