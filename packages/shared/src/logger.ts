import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** `json` for production and log shippers; `pretty` for people reading a terminal. */
export type LogFormat = 'json' | 'pretty';

/**
 * Paths pino blanks in every line. Secrets never belong in logs: webhook signatures, API keys,
 * webhook secrets, client secrets, admin credentials, orders API keys and users' JWTs.
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["stripe-signature"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["stripe-signature"]',
  '*.client_secret',
  '*.clientSecret',
  'client_secret',
  'clientSecret',
  'STRIPE_SECRET_KEY',
  'STRIPE_WEBHOOK_SECRET',
  'ADMIN_TOKEN',
  '*.STRIPE_SECRET_KEY',
  '*.STRIPE_WEBHOOK_SECRET',
  '*.ADMIN_TOKEN',
  // Orders API credentials: service keys, the JWT secret, bearer tokens anywhere in a logged object.
  'ORDERS_API_KEYS',
  'ORDERS_JWT_SECRET',
  '*.ORDERS_API_KEYS',
  '*.ORDERS_JWT_SECRET',
  '*.headers.authorization',
  'authorization',
  // ioredis puts the failed command's arguments on its errors: AUTH and HELLO carry the password.
  'err.command.args',
  '*.err.command.args',
  '*.authorization',
  'token',
  '*.token',
];

/** The pino options every process uses; `name` says which process wrote the line. */
function loggerOptions(name: string, level: string): LoggerOptions {
  return {
    name,
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
}

/**
 * pino-pretty as an in-process stream (no transport thread), loaded only when asked for so that
 * JSON processes never pay for it. Redaction happens before a line reaches it.
 */
function prettyStream(destination: DestinationStream | undefined): DestinationStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  return pretty({
    colorize: destination === undefined && process.stdout.isTTY,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    singleLine: true,
    sync: true,
    ...(destination ? { destination } : {}),
  });
}

/** One logger per process; children carry request, job and event ids. */
export function createLogger(name: string, level = 'info', destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  const output = format === 'pretty' ? prettyStream(destination) : destination;
  return output ? pino(loggerOptions(name, level), output) : pino(loggerOptions(name, level));
}
