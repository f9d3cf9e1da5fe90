import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Paths pino blanks in every line. Secrets never belong in logs: webhook signatures, API keys,
 * webhook secrets, client secrets, admin credentials, orders API keys and users' JWTs.
 */
export const REDACTED_PATHS = [
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
  '*.authorization',
  'token',
  '*.token',
];

/** The pino options every process uses; `name` says which process wrote the line. */
export function loggerOptions(name: string, level: string): LoggerOptions {
  return {
    name,
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
}

/** One logger per process; children carry request, job and event ids. */
export function createLogger(name: string, level = 'info', destination?: pino.DestinationStream): Logger {
  return destination ? pino(loggerOptions(name, level), destination) : pino(loggerOptions(name, level));
}
