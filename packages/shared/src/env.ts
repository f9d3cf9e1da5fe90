import { z } from 'zod';

/** PostgreSQL used when DATABASE_URL is unset (contract: a local PostgreSQL on 127.0.0.1:5432). */
export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/ledger';
/** Redis used when REDIS_URL is unset. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const url = (protocols: string[]) =>
  z
    .string()
    .trim()
    .refine((value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    }, `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);

/** Splits a comma-separated list, dropping blanks. */
export const commaList = z
  .string()
  .transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean));

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A duration in seconds, written as seconds (`86400`) or with a unit (`90s`, `30m`, `24h`, `2d`). */
export const durationSeconds = z
  .string()
  .trim()
  .regex(/^\d+\s*[smhd]?$/, 'must be a duration such as 86400, 30m, 24h or 2d')
  .transform((value) => {
    const unit = value.at(-1) ?? '';
    return unit in DURATION_UNITS ? Number.parseInt(value, 10) * DURATION_UNITS[unit]! : Number.parseInt(value, 10);
  })
  .pipe(z.number().int().min(1, 'must be at least one second'));

/** Variables both apps read. */
export const commonEnvSchema = z.object({
  NODE_ENV: z.string().default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: url(['postgresql:', 'postgres:']).default(DEFAULT_DATABASE_URL),
  REDIS_URL: url(['redis:', 'rediss:']).default(DEFAULT_REDIS_URL),
  /**
   * Prefix of every BullMQ key. Wrap it in braces (`{ledger}`) on Redis Cluster so that all keys of
   * a queue hash to one slot (https://docs.bullmq.io/bull/patterns/redis-cluster).
   */
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}.-]+$/, 'may hold letters, digits, _ . - and braces only')
    .default('ledger'),
  STRIPE_SECRET_KEY: z
    .string()
    .regex(/^(sk|rk)_[A-Za-z0-9_]+$/, 'must be a Stripe secret or restricted key (sk_… or rk_…)')
    .optional(),
  STRIPE_API_BASE: url(['http:', 'https:']).optional(),
  /** Connected accounts (Stripe Connect) whose events this deployment applies; others are not ours. */
  STRIPE_CONNECTED_ACCOUNTS: commaList
    .pipe(z.array(z.string().regex(/^acct_[A-Za-z0-9]+$/, 'must hold acct_… ids, comma separated')))
    .optional(),
});

/**
 * Parses `source` with `schema` once at start-up. On failure it throws {@link EnvError}, whose
 * message is one readable line naming each bad variable; `main` files print it and exit.
 */
export function parseEnv<S extends z.ZodType>(schema: S, source: NodeJS.ProcessEnv = process.env): z.infer<S> {
  // Empty strings mean "unset" (docker-compose and shells often pass VAR= for optional values).
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const name = issue.path.join('.') || 'environment';
      return issue.code === 'invalid_type' && issue.input === undefined
        ? `${name} is required`
        : `${name} ${issue.message}`;
    });
    throw new EnvError(`Invalid environment: ${problems.join('; ')}`);
  }
  return result.data;
}

/** A missing or malformed environment variable. */
export class EnvError extends Error {
  override name = 'EnvError';
}

/** Runs `start`, turning an {@link EnvError} into one line on stderr and exit code 1. */
export async function runMain(start: () => Promise<unknown>): Promise<void> {
  try {
    await start();
  } catch (error) {
    if (error instanceof EnvError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
