/** Exit codes of the CLI (docs/cli.md). */
export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3, gaveUp: 4 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The command line is wrong: the message, then the usage text, exit 2. */
export class UsageError extends Error {
  readonly exitCode = EXIT.usage;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The server answered with an error (4xx/5xx): its message, exit 1. */
export class ApiError extends Error {
  readonly exitCode = EXIT.refused;
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

/** No answer: connection refused, DNS, timeout. Exit 3. */
export class UnreachableError extends Error {
  readonly exitCode = EXIT.unreachable;
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableError';
  }
}

/** `--wait` stopped waiting (timeout, or a sync that cannot go on without the operator). Exit 4. */
export class GaveUpError extends Error {
  readonly exitCode = EXIT.gaveUp;
  constructor(message: string) {
    super(message);
    this.name = 'GaveUpError';
  }
}

export type CliError = UsageError | ApiError | UnreachableError | GaveUpError;

export function isCliError(error: unknown): error is CliError {
  return error instanceof UsageError || error instanceof ApiError || error instanceof UnreachableError || error instanceof GaveUpError;
}
