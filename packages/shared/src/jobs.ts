import type { JobsOptions, KeepJobs, Queue } from 'bullmq';
import { z } from 'zod';

/**
 * Event types the worker applies. Anything else is acknowledged by the receiver and counted, never
 * enqueued. https://docs.stripe.com/api/events/types
 */
export const HANDLED_EVENT_TYPES = [
  'payment_intent.succeeded',
  'payment_intent.processing',
  'payment_intent.payment_failed',
  'payment_intent.canceled',
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'charge.refunded',
  'refund.created',
  'refund.updated',
  'refund.failed',
  'charge.refund.updated',
  'charge.dispute.created',
  'charge.dispute.closed',
] as const;

export type HandledEventType = (typeof HANDLED_EVENT_TYPES)[number];

const handledTypes = new Set<string>(HANDLED_EVENT_TYPES);
export function isHandledEventType(type: string): type is HandledEventType {
  return handledTypes.has(type);
}

const eventId = z.string().regex(/^evt_[A-Za-z0-9_]{1,250}$/, 'must be an event id (evt_…)');
const unixSeconds = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** A plain JSON object: Stripe objects are never arrays. */
const stripeObject = z.record(z.string(), z.unknown());

/** A webhook body as Stripe sends it: the envelope the receiver checks before queueing anything. */
export const stripeEventEnvelopeSchema = z.object({
  id: eventId,
  object: z.literal('event'),
  type: z.string().min(1).max(100),
  created: unixSeconds,
  livemode: z.boolean().default(false),
  /** Set on events of a connected account (Stripe Connect). */
  account: z.string().max(255).nullish(),
  data: z.object({ object: stripeObject }),
});
export type StripeEventEnvelope = z.infer<typeof stripeEventEnvelopeSchema>;

/**
 * A Stripe event as queued: what the worker needs and nothing else ({@link compactStripeObject};
 * the signature never leaves the receiver).
 */
export const stripeEventJobSchema = z.object({
  id: eventId,
  type: z.string(),
  /** Stripe's `created`, unix seconds. */
  created: unixSeconds,
  livemode: z.boolean(),
  account: z.string().optional(),
  object: stripeObject,
});
export type StripeEventJob = z.infer<typeof stripeEventJobSchema>;

/** Deepest nesting of a Stripe event we accept; real ones stay far below (expanded objects included). */
export const MAX_EVENT_DEPTH = 64;

/**
 * Whether `value` nests objects or arrays deeper than `maxDepth`. Iterative: a signed body nested
 * thousands of levels deep must be answered 400, not overflow the stack of a recursive walk (the
 * job's JSON serialization is recursive too).
 */
export function nestedDeeperThan(value: unknown, maxDepth: number): boolean {
  const stack: { node: unknown; depth: number }[] = [{ node: value, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { node, depth } = item;
    if (node === null || typeof node !== 'object') continue;
    if (depth >= maxDepth) return true;
    for (const child of Object.values(node)) stack.push({ node: child, depth: depth + 1 });
  }
  return false;
}

/** Fields of a Stripe object the worker reads (event-facts.ts); a test checks nothing else is needed. */
const OBJECT_FIELDS = [
  'id',
  'object',
  'amount',
  'amount_received',
  'amount_total',
  'currency',
  'status',
  'mode',
  'payment_status',
] as const;
/** Metadata the worker reads: the order and account this system wrote when it created the PaymentIntent. */
const METADATA_FIELDS = ['order_id', 'account_id'] as const;

function pick(source: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const field of fields) if (field in source) picked[field] = source[field];
  return picked;
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
/** An expandable field (an id, or the expanded object) as its id. */
const idOf = (value: unknown) => (isObject(value) && 'id' in value ? value.id : value);

/**
 * What a job keeps of a Stripe object: the fields the worker reads, nothing else. Jobs stay small
 * (Redis memory follows the backlog times the job size), and nothing the worker does not need —
 * client secrets, customer details — is ever written to Redis.
 */
export function compactStripeObject(object: Record<string, unknown>): Record<string, unknown> {
  const compact = pick(object, OBJECT_FIELDS);
  if ('payment_intent' in object) compact.payment_intent = idOf(object.payment_intent);
  if (isObject(object.metadata)) compact.metadata = pick(object.metadata, METADATA_FIELDS);
  const refunds = isObject(object.refunds) ? object.refunds.data : undefined;
  if (Array.isArray(refunds)) {
    compact.refunds = {
      data: refunds.filter(isObject).map((refund) => ({
        ...pick(refund, OBJECT_FIELDS),
        ...('payment_intent' in refund ? { payment_intent: idOf(refund.payment_intent) } : {}),
      })),
    };
  }
  return compact;
}

/** The job payload for a verified event. */
export function stripeEventJobData(event: {
  id: string;
  type: string;
  created: number;
  livemode: boolean;
  account?: string | null;
  data: { object: object };
}): StripeEventJob {
  return {
    id: event.id,
    type: event.type,
    created: event.created,
    livemode: event.livemode,
    ...(event.account ? { account: event.account } : {}),
    object: compactStripeObject(event.data.object as Record<string, unknown>),
  };
}

export const paymentSyncJobSchema = z.object({
  paymentIntentId: z.string().regex(/^pi_[A-Za-z0-9_]+$/),
  /** `expire`: the order outlived ORDER_TTL; cancel the PaymentIntent unless it is paid. */
  reason: z.enum(['confirm', 'reconcile', 'replay', 'expire']),
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
