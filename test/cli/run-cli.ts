import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/commands.js';

export const BIN = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running `node bin/mailroom.js …`: the real command, as an operator runs it. */
export class CliProcess {
  stdout = '';
  stderr = '';
  readonly child: ChildProcess;
  private readonly exited: Promise<CliResult>;

  constructor(args: string[], env: Record<string, string | undefined> = {}, input?: string) {
    const childEnv: Record<string, string | undefined> = { ...process.env, MAILROOM_URL: undefined, ADMIN_TOKEN: undefined, ...env };
    for (const key of Object.keys(childEnv)) if (childEnv[key] === undefined) delete childEnv[key];
    this.child = spawn(process.execPath, [BIN, ...args], { env: childEnv as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => { this.stdout += chunk.toString(); });
    this.child.stderr!.on('data', (chunk: Buffer) => { this.stderr += chunk.toString(); });
    this.child.stdin!.end(input ?? '');
    this.exited = once(this.child, 'exit').then(([code]) => ({ code: code as number | null, stdout: this.stdout, stderr: this.stderr }));
  }

  wait(): Promise<CliResult> {
    return this.exited;
  }
}

export function runCli(args: string[], env: Record<string, string | undefined> = {}, input?: string): Promise<CliResult> {
  return new CliProcess(args, env, input).wait();
}

/**
 * The CLI's `main()` in this process, with a captured terminal: for what the parsing and the
 * messages decide, where a process per case (about half a second of start-up each) adds nothing.
 * `runCli` is the real command, for exit codes, streams and signals.
 */
export async function runMain(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: { write: (t: string) => { stdout += t; } },
    stderr: { write: (t: string) => { stderr += t; } },
    readStdin: async () => '',
    now: () => Date.now(),
    sleep: async () => {},
    catchInterrupt: () => ({ signal: AbortSignal.abort(), dispose: () => {} }),
  };
  const code = await main(args, env, io);
  return { code, stdout, stderr };
}
