import { z } from 'zod';
import { hasHashTag, isClusterUrl, parseRedisUrl } from './redis-url.js';

/** PostgreSQL used when DATABASE_URL is unset (contract: a local PostgreSQL on 127.0.0.1:5432). */
export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/ledger';
/** Redis used when REDIS_URL is unset. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const url = (protocols: string[]) =>
  z
    .string()
    .trim()
    .refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
    );

/** Splits a comma-separated list, dropping blanks. */
export const commaList = z.string().transform((value) =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean),
);

/** Variables both apps read. */
export const commonEnvSchema = z.object({
  NODE_ENV: z.string().default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `json` (one JSON object a line, for log shippers) or `pretty` (`npm start` and `npm run dev` set it). */
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
  DATABASE_URL: url(['postgresql:', 'postgres:']).default(DEFAULT_DATABASE_URL),
  /**
   * One Redis server (`redis://`, `rediss://`) or a Redis Cluster given by some of its nodes
   * (`redis+cluster://host:port,host:port`, `rediss+cluster://` for TLS).
   */
  REDIS_URL: z
    .string()
    .trim()
    .superRefine((value, ctx) => {
      try {
        parseRedisUrl(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .default(DEFAULT_REDIS_URL),
  /**
   * Prefix of every BullMQ key. On Redis Cluster it must hold a hash tag (`{ledger}`) so that all
   * keys of a queue hash to one slot (https://docs.bullmq.io/bull/patterns/redis-cluster):
   * {@link checkRedisEnv} refuses to start otherwise.
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
  /**
   * Where the emulator is when STRIPE_SECRET_KEY is unset and STRIPE_API_BASE too; ignored with a
   * key. docker-compose sets it, so that setting a key never leaves the system pointed at the emulator.
   */
  STRIPE_EMULATOR_URL: url(['http:', 'https:']).optional(),
  /** Connected accounts (Stripe Connect) whose events this deployment applies; others are not ours. */
  /**
   * Synthetic events a process runs through its own hot path before it says ready (the receiver:
   * signed deliveries to its webhook route; the worker: jobs of a queue of its own), so that its
   * first real events are served at full speed; 0 skips that (connections are still opened).
   */
  WARM_UP_EVENTS: z.coerce.number().int().min(0).max(100_000).default(1000),
  STRIPE_CONNECTED_ACCOUNTS: commaList
    .pipe(z.array(z.string().regex(/^acct_[A-Za-z0-9]+$/, 'must hold acct_… ids, comma separated')))
    .optional(),
});

/**
 * Refinement both apps' schemas add: on Redis Cluster, QUEUE_PREFIX must hold a hash tag. A start
 * that refuses beats a default that differs by deployment: the prefix names every key, and jobs
 * queued under another name would be left behind unseen by a worker started with the new one.
 */
export function checkRedisEnv(env: { REDIS_URL: string; QUEUE_PREFIX: string }, ctx: z.RefinementCtx): void {
  if (isClusterUrl(env.REDIS_URL) && !hasHashTag(env.QUEUE_PREFIX)) {
    ctx.addIssue({
      code: 'custom',
      path: ['QUEUE_PREFIX'],
      message: `must hold a hash tag such as {${env.QUEUE_PREFIX.replace(/[{}]/g, '') || 'ledger'}} on Redis Cluster (REDIS_URL is redis+cluster://), so that each queue's keys live in one slot (got "${env.QUEUE_PREFIX}")`,
    });
  }
}

/**
 * Parses `source` with `schema` once at start-up. On failure it throws {@link EnvError}, whose
 * message is one readable line naming each bad variable; `main` files print it and exit.
 */
export function parseEnv<S extends z.ZodType>(schema: S, source: NodeJS.ProcessEnv = process.env): z.infer<S> {
  // Empty strings mean "unset" (docker-compose and shells often pass VAR= for optional values).
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.') || 'environment'} ${describeIssue(issue, cleaned)}`);
    throw new EnvError(`Invalid environment: ${problems.join('; ')}`);
  }
  return result.data;
}

const EXPECTED: Record<string, string> = { number: 'a number', int: 'an integer', string: 'text', boolean: 'true or false' };

/** Zod's issue as the end of a sentence starting with the variable's name. */
function describeIssue(issue: z.core.$ZodIssue, source: Record<string, string | undefined>): string {
  const given = source[String(issue.path[0])];
  // Zod leaves `issue.input` out, and a coerced `PORT=abc` fails as an invalid type too: only a
  // variable that is really absent is "required".
  if (issue.code === 'invalid_type') {
    return given === undefined ? 'is required' : `must be ${EXPECTED[issue.expected] ?? issue.expected} (got "${given}")`;
  }
  if (issue.code === 'invalid_value') return `must be one of ${issue.values.join(', ')} (got "${given}")`;
  // Zod's default bounds read "Too big: expected number to be <=65535"; custom messages pass as they are.
  if ((issue.code === 'too_big' || issue.code === 'too_small') && issue.origin === 'number' && issue.message.startsWith('Too ')) {
    const bound = issue.code === 'too_big' ? `at most ${issue.maximum}` : `at least ${issue.minimum}`;
    return `must be ${bound} (got "${given}")`;
  }
  return issue.message;
}

/** A missing or malformed environment variable. */
export class EnvError extends Error {
  override name = 'EnvError';
}
