import { pino, type Logger } from 'pino';

export type { Logger };

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
