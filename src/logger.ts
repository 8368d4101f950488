import { pino, type Logger } from 'pino';

export type { Logger };

/** What a logged error may show besides its message and stack: codes and kinds, never payloads. */
const ERROR_FIELDS = ['code', 'errno', 'syscall', 'kind', 'status', 'tag'] as const;

/**
 * An error as a log line may carry it: its type, message and stack (its causes' too, as pino's own
 * serializer writes them), a few scalar fields that say what failed (`code`, `kind`, `status`, …),
 * and the name of the Redis command, never its arguments. Everything else an error object carries
 * is left out: ioredis hangs every command's arguments on its error replies (sealed or plaintext
 * credentials, an OAuth state's verifier), the Dropbox SDK its response headers and body, and
 * pino's default serializer would copy all of it into the line.
 */
export function errorFields(error: unknown): unknown {
  if (!error || typeof (error as { message?: unknown }).message !== 'string') return error;
  const std = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { type: std.type, message: std.message, stack: std.stack };
  const source = error as Record<string, unknown>;
  for (const key of ERROR_FIELDS) {
    const value = source[key];
    if (typeof value === 'string' || typeof value === 'number') out[key] = value;
  }
  const failure = source.failure as { kind?: unknown } | undefined;
  if (out.kind === undefined && typeof failure?.kind === 'string') out.kind = failure.kind;
  const command = (source.command as { name?: unknown } | undefined)?.name;
  if (typeof command === 'string') out.command = command;
  return out;
}

/**
 * Structured logs: one JSON line per event, the account id on every line of an account's events
 * (child loggers), and tokens redacted wherever they might appear.
 */
export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'mailroom' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: errorFields },
      redact: {
        paths: ['accessToken', 'refreshToken', 'credentials', '*.accessToken', '*.refreshToken', 'headers.authorization', 'appSecret', 'adminToken'],
        censor: '[redacted]',
      },
    },
    (options.destination ?? process.stdout) as pino.DestinationStream,
  );
}

/** A logger that writes nothing (tests that do not read logs). */
export const silentLogger: Logger = pino({ level: 'silent' });
