import type { JobsOptions, KeepJobs, Queue } from 'bullmq';
import { z } from 'zod';
import { stripeEventJobSchema } from './stripe-events.js';
import { jobTraceSchema as trace } from './tracing.js';

export const paymentSyncJobSchema = z.object({
  paymentIntentId: z.string().regex(/^pi_[A-Za-z0-9_]+$/),
  /** `expire`: the order outlived ORDER_TTL; cancel the PaymentIntent unless it is paid. */
  reason: z.enum(['confirm', 'reconcile', 'replay', 'expire']),
  trace,
});
export type PaymentSyncJob = z.infer<typeof paymentSyncJobSchema>;

/**
 * Concurrent confirms of one PaymentIntent collapse into one job per window; a confirm after the
 * window asks Stripe again (the earlier answer may have been `processing`).
 */
export const SYNC_COLLAPSE_WINDOW_MS = 5_000;

export function paymentSyncJobId(paymentIntentId: string, now = Date.now()): string {
  return `sync-${paymentIntentId}-${Math.floor(now / SYNC_COLLAPSE_WINDOW_MS)}`;
}

/** A thin `v2.core.health.event_generation_failure.resolved` to recover from (its id and when it came). */
export const eventRecoveryJobSchema = z.object({
  eventId: z.string().regex(/^evt_[A-Za-z0-9_]{1,250}$/),
  /** Unix seconds: the event's `created` (or when it was received, if it had none). */
  created: z.number().int().min(0),
  trace,
});
export type EventRecoveryJob = z.infer<typeof eventRecoveryJobSchema>;

export const reviewResolutionJobSchema = z.object({
  orderId: z.string().min(1).max(100),
  decision: z.enum(['credit', 'dismiss']),
  note: z.string().trim().min(1).max(2_000),
  /** Signed minor units instead of the sum of what is held (credit only). */
  amount: z
    .number()
    .int()
    .refine((value) => value !== 0, 'must not be 0')
    .optional(),
  resolvedBy: z.string().min(1).max(200),
  trace,
});
export type ReviewResolutionJob = z.infer<typeof reviewResolutionJobSchema>;

const DAY_SECONDS = 24 * 3600;

/**
 * Completed jobs stay only as long as an operator looks at them in Bull Board: minutes, and never
 * more than a few thousand. The PostgreSQL inbox is the permanent dedupe, so Redis memory follows the
 * backlog, not the traffic history (at ~0.5 KB a job, 1,000 events/s kept for days would be
 * hundreds of GB).
 */
const COMPLETED_RETENTION = { age: 15 * 60, count: 5_000 };

/** One kind of job: its queue, the payload both sides agree on, how it retries and how long it is kept. */
interface JobDefinition {
  queue: string;
  schema: z.ZodType;
  attempts: number;
  /** Base delay of the exponential backoff between attempts (tests shorten it). */
  backoffMs?: number;
  removeOnComplete: KeepJobs;
  /** Money jobs that fail stay visible until an operator acts. */
  removeOnFail: KeepJobs | false;
}

/**
 * The job catalog: every kind of job, the shape of its payload and how it retries. The receiver
 * (producer) and the worker (consumer) both take name, payload type and options from here, so they
 * cannot disagree about a job (trigger.dev's worker catalog).
 */
export const JOBS = {
  /** Verified Stripe events; job id = event id. Failed ones stay until an operator acts. */
  stripeEvents: {
    queue: 'stripe-events',
    schema: stripeEventJobSchema,
    attempts: 10,
    backoffMs: 1_000,
    removeOnComplete: COMPLETED_RETENTION,
    removeOnFail: false,
  },
  /** "Ask Stripe about this PaymentIntent" (client confirms, reconciliation of stale orders). */
  paymentSync: {
    queue: 'payment-sync',
    schema: paymentSyncJobSchema,
    attempts: 8,
    backoffMs: 1_000,
    removeOnComplete: COMPLETED_RETENTION,
    removeOnFail: { age: 7 * DAY_SECONDS },
  },
  /** The reconciliation and inbox retention schedules (job schedulers; no payload). */
  reconcile: {
    queue: 'reconcile',
    schema: z.object({}),
    attempts: 1,
    removeOnComplete: { count: 100 },
    removeOnFail: { count: 100 },
  },
  /**
   * Recoveries Stripe asks for (an event generation failure was resolved): run by the maintenance
   * worker, on its queue, one at a time; retried while Stripe cannot be asked.
   */
  eventRecovery: {
    queue: 'reconcile',
    schema: eventRecoveryJobSchema,
    attempts: 8,
    backoffMs: 5_000,
    removeOnComplete: { count: 100 },
    removeOnFail: { age: 7 * DAY_SECONDS },
  },
  /**
   * Operators' review resolutions from the admin API (the worker writes the money, not the
   * receiver). An operator waits for the answer, so no retries; kept a while for Bull Board.
   */
  reviews: {
    queue: 'reviews',
    schema: reviewResolutionJobSchema,
    attempts: 1,
    removeOnComplete: { age: DAY_SECONDS },
    removeOnFail: { age: 7 * DAY_SECONDS },
  },
} as const satisfies Record<string, JobDefinition>;

export type JobKind = keyof typeof JOBS;
/** The payload a producer hands over for a job of kind `K`. */
export type JobData<K extends JobKind> = z.input<(typeof JOBS)[K]['schema']>;
/** A job of kind `K` as its worker reads it, parsed with the same schema. */
export type ParsedJobData<K extends JobKind> = z.output<(typeof JOBS)[K]['schema']>;
/** A queue of one kind of job: `add` takes that kind's payload only. */
export type JobQueue<K extends JobKind> = Queue<JobData<K>>;
export type JobQueues = { [K in JobKind]: JobQueue<K> };

/** Queue names by kind. */
export const QUEUES = Object.fromEntries(Object.entries(JOBS).map(([kind, job]) => [kind, job.queue])) as {
  [K in JobKind]: (typeof JOBS)[K]['queue'];
};
export type QueueName = (typeof QUEUES)[JobKind];

/** The BullMQ options of one job of kind `kind` under `jobId` (its attempts, backoff and retention). */
export function jobOptions(kind: JobKind, jobId: string, backoffMs?: number): JobsOptions & { jobId: string } {
  const job: JobDefinition = JOBS[kind];
  return {
    jobId,
    attempts: job.attempts,
    ...(job.backoffMs === undefined ? {} : { backoff: { type: 'exponential', delay: backoffMs ?? job.backoffMs } }),
    removeOnComplete: job.removeOnComplete,
    removeOnFail: job.removeOnFail,
  };
}
