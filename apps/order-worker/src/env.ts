import { checkRedisEnv, commonEnvSchema, parseEnv, stripeClientEnvShape } from '@ledger/shared';
import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A duration in seconds, written as seconds (`86400`) or with a unit (`90s`, `30m`, `24h`, `2d`). */
const durationSeconds = z
  .string()
  .trim()
  .regex(/^\d+\s*[smhd]?$/, 'must be a duration such as 86400, 30m, 24h or 2d')
  .transform((value) => {
    const scale = DURATION_UNITS[value.at(-1) ?? ''] ?? 1;
    return Number.parseInt(value, 10) * scale;
  })
  .pipe(z.number().int().min(1, 'must be at least one second'));

export const workerEnvSchema = commonEnvSchema
  .extend({
    ...stripeClientEnvShape,
    /** Jobs one worker process runs at once (per queue); their payments share group-commit batches. */
    WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(64),
    /** Group commit: payments per statement at most (1 turns batching off). */
    WORKER_BATCH_SIZE: z.coerce.number().int().min(1).max(1000).default(64),
    /** Group commit: how long the first payment of a batch waits for others, in milliseconds. */
    WORKER_BATCH_WAIT_MS: z.coerce.number().min(0).max(1000).default(5),
    /** PostgreSQL connections of this process (batches need few; refunds and disputes take one each while they run). */
    WORKER_DB_POOL_SIZE: z.coerce.number().int().min(2).max(200).default(10),
    /**
     * How long a job's lock lasts without renewal. A worker that dies or freezes loses its jobs to
     * another worker after this long (BullMQ's stalled-job check); the ledger keeps that safe.
     */
    WORKER_LOCK_DURATION_MS: z.coerce.number().int().min(500).default(30_000),
    /** Port of this process's /healthz and /readyz; unset: none (several workers per host). */
    WORKER_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    /** Port of this process's own /metrics; may equal WORKER_HEALTH_PORT (one listener then). */
    WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    /** Address those listeners bind: loopback by default; 0.0.0.0 for probes and scrapers from outside. */
    WORKER_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
    /** How often the reconciliation pass runs, in seconds (0 disables the schedule). */
    RECONCILE_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(300),
    /**
     * Warn when the reconciliation checkpoint is older than this many days: Stripe lists events of
     * the last 30 days only, so past 30 a pass can no longer see what it missed.
     */
    RECONCILE_CHECKPOINT_WARN_DAYS: z.coerce
      .number()
      .min(1)
      .max(29.99, 'must be below 30 (Stripe lists events of the last 30 days only)')
      .default(20),
    /** Orders awaiting payment longer than this are checked with Stripe by reconciliation. */
    RECONCILE_STALE_AFTER_SECONDS: z.coerce.number().int().min(0).default(900),
    /** An order unpaid this long has its PaymentIntent canceled at Stripe and ends as expired. */
    ORDER_TTL: durationSeconds.default(24 * 3600),
    /**
     * Inbox rows (processed Stripe events) are kept this many days, then removed in small batches.
     * Stripe resends an event for up to 30 days; the ledger's unique keys are the permanent guarantee.
     */
    INBOX_RETENTION_DAYS: z.coerce.number().int().min(31, 'must be at least 31 (Stripe resends events for up to 30 days)').default(35),
    /**
     * How often holds past their expiry are recorded as expired, in seconds (0: not by this
     * process). They stop counting against `available` the moment they expire; this only writes it down.
     */
    HOLD_EXPIRY_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(60),
    /** Stripe API requests per second this process makes at most (Stripe: 25/s sandbox, 100/s live). */
    STRIPE_MAX_RPS: z.coerce.number().min(1).max(100).default(20),
  })
  .superRefine(checkRedisEnv);

export type WorkerEnv = z.infer<typeof workerEnvSchema>;

export function loadWorkerEnv(source: NodeJS.ProcessEnv = process.env): WorkerEnv {
  return parseEnv(workerEnvSchema, source);
}
