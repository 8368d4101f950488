import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { ApiClient } from './api-client.js';
import { parseInvocation, type Invocation } from './args.js';
import { runCommand, type CliIO } from './commands.js';
import { EXIT, isCliError, UsageError } from './errors.js';
import { USAGE } from './usage.js';

/** The real terminal: process streams, the system clock, SIGINT. */
export function processIO(): CliIO {
  // stdout's reader left (`| head -1`, `| grep -m1 synced`): a write fails with EPIPE, an 'error'
  // event that nothing handled crashed the command with a stack trace. What is left to print has
  // no reader: `tail` and a wait stop as on Ctrl-C.
  const readerGone = new AbortController();
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && !readerGone.signal.aborted) throw error;
    readerGone.abort();
  });
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    async readStdin() {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Buffer));
      return Buffer.concat(chunks).toString('utf8');
    },
    now: () => Date.now(),
    sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined),
    catchInterrupt() {
      const controller = new AbortController();
      const onInterrupt = () => controller.abort();
      process.on('SIGINT', onInterrupt);
      return { signal: AbortSignal.any([controller.signal, readerGone.signal]), dispose: () => process.off('SIGINT', onInterrupt) };
    },
  };
}

/** Runs the CLI; resolves to the exit code (docs/cli.md). */
export async function main(argv: readonly string[], env: Record<string, string | undefined> = process.env, io: CliIO = processIO()): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parseInvocation(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`mailroom: ${error.message}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  const { command } = invocation;
  if (command.name === 'help') {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  try {
    return await runCommand(command, { client: new ApiClient(invocation.url, invocation.token!), io, json: invocation.json });
  } catch (error) {
    if (isCliError(error)) {
      io.stderr.write(`mailroom: ${error.message}\n`);
      return error.exitCode;
    }
    io.stderr.write(`mailroom: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    return EXIT.refused;
  }
}

// Run when executed (bin/mailroom.js, or `tsx src/cli/main.ts`), not when imported by tests.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
