import { commonEnvSchema, parseEnv } from '@ledger/shared';
import { z } from 'zod';

export const workerEnvSchema = commonEnvSchema.extend({
  /** Jobs one worker process runs at once (per queue). PostgreSQL connections are sized from it. */
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(500).default(16),
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
  /** Orders awaiting payment longer than this are checked with Stripe by reconciliation. */
  RECONCILE_STALE_AFTER_SECONDS: z.coerce.number().int().min(0).default(900),
  /** Stripe API requests per second this process makes at most (Stripe: 25/s sandbox, 100/s live). */
  STRIPE_MAX_RPS: z.coerce.number().min(1).max(100).default(20),
});

export type WorkerEnv = z.infer<typeof workerEnvSchema>;

export function loadWorkerEnv(source: NodeJS.ProcessEnv = process.env): WorkerEnv {
  return parseEnv(workerEnvSchema, source);
}
