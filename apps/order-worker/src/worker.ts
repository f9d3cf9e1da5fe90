import {
  QUEUES,
  isDatabaseUnavailableError,
  paymentSyncJobSchema,
  stripeEventJobSchema,
  type Logger,
  type OutageLog,
  type PrismaClient,
  type Stripe,
  type StripeEventJob,
} from '@ledger/shared';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { paymentFactsFromEvent, MalformedEventError } from './event-facts.js';
import { applyPaymentFacts, recordEventFailure, type ApplyResult, type EventSource } from './ledger.js';
import type { WorkerMetrics } from './metrics.js';
import type { PaymentFact } from './payment-facts.js';
import { paymentFactsFromPaymentIntent } from './payment-sync.js';

/** What the order workers need; built by `main.ts` (or a test) and passed in. */
export interface OrderWorkerDeps {
  prisma: PrismaClient;
  /** A worker connection (`maxRetriesPerRequest: null`); BullMQ duplicates it for blocking calls. */
  connection: Redis;
  prefix: string;
  stripe: Stripe;
  logger: Logger;
  metrics: WorkerMetrics;
  /** Jobs one process runs at once, per queue. */
  concurrency: number;
  /** Lock duration; a job whose worker stops renewing it is taken over after this (stalled). */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Stripe API calls per second the sync worker makes at most. */
  stripeRequestsPerSecond?: number;
  /**
   * Outages of PostgreSQL and Redis, each logged once (main.ts); without them every connection error
   * and every job failed by an outage is logged on its own.
   */
  outages?: { postgres: OutageLog; redis: OutageLog };
}

/** The running workers of one process. */
export interface OrderWorkers {
  workers: Worker[];
  /** Stops taking jobs, lets active jobs finish, then closes. Runs every step even if one fails. */
  close(): Promise<void>;
}

function eventSource(event: StripeEventJob): EventSource {
  const objectId = typeof event.object.id === 'string' ? event.object.id : null;
  return { id: event.id, type: event.type, objectId, created: event.created };
}

function countOutcomes(metrics: WorkerMetrics, facts: PaymentFact[], result: ApplyResult): void {
  facts.forEach((fact, index) => {
    metrics.facts.inc({ kind: fact.kind, outcome: result.outcomes[index] ?? 'already_applied' });
  });
}

/** Applies one queued Stripe event. Exported for tests and replay; the worker calls it per job. */
export async function processStripeEvent(deps: Pick<OrderWorkerDeps, 'prisma' | 'metrics'>, data: unknown, log: Logger) {
  const parsed = stripeEventJobSchema.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`not a Stripe event job: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const event = parsed.data;
  const source = eventSource(event);
  let facts: PaymentFact[];
  try {
    facts = paymentFactsFromEvent(event);
  } catch (error) {
    if (!(error instanceof MalformedEventError)) throw error;
    await recordEventFailure(deps.prisma, source, error.message);
    throw new UnrecoverableError(error.message);
  }
  let result: ApplyResult;
  try {
    result = await applyPaymentFacts(deps.prisma, facts, source);
  } catch (error) {
    await recordEventFailure(deps.prisma, source, error instanceof Error ? error.message : String(error)).catch((recordError: unknown) => {
      // With PostgreSQL down this fails for every job; the outage itself is logged once.
      log[isDatabaseUnavailableError(recordError) ? 'debug' : 'warn']({ err: recordError }, 'could not record the failed attempt in the inbox');
    });
    throw error;
  }
  countOutcomes(deps.metrics, facts, result);
  if (result.credited > 0) deps.metrics.eventToCredit.observe(Math.max(0, Date.now() / 1000 - event.created));
  log.info({ eventIsNew: result.eventIsNew, outcomes: result.outcomes }, result.eventIsNew ? 'event applied' : 'event already processed');
  return result;
}

/** Asks Stripe for a PaymentIntent and applies what it says (client confirm, reconciliation). */
export async function syncPaymentIntent(deps: Pick<OrderWorkerDeps, 'prisma' | 'metrics' | 'stripe'>, data: unknown, log: Logger) {
  const parsed = paymentSyncJobSchema.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`not a payment sync job: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const pi = await deps.stripe.paymentIntents.retrieve(parsed.data.paymentIntentId);
  const facts = paymentFactsFromPaymentIntent(pi);
  const result = await applyPaymentFacts(deps.prisma, facts);
  countOutcomes(deps.metrics, facts, result);
  log.info({ paymentIntentStatus: pi.status, outcomes: result.outcomes }, 'payment intent synced');
  return result;
}

/** Starts the event and sync workers of one process. */
export function startOrderWorkers(deps: OrderWorkerDeps): OrderWorkers {
  const options = {
    connection: deps.connection,
    prefix: deps.prefix,
    concurrency: deps.concurrency,
    lockDuration: deps.lockDurationMs ?? 30_000,
    stalledInterval: deps.stalledIntervalMs ?? 30_000,
    // BullMQ fails a job whose worker died under it more than this many times, skipping its
    // attempts. Applying a job twice is harmless here (the ledger decides), and the default of 1
    // parked money events in the failed list after two worker crashes (found by the chaos run).
    maxStalledCount: 10,
  };
  const jobLogger = (job: Job) => deps.logger.child({ queue: job.queueName, jobId: job.id, attempt: job.attemptsMade + 1 });

  const eventsWorker = new Worker(QUEUES.stripeEvents, async (job) => processStripeEvent(deps, job.data, jobLogger(job)), options);
  // Each sync job is one Stripe request: the limiter keeps all of them within Stripe's rate limit.
  const syncWorker = new Worker(QUEUES.paymentSync, async (job) => syncPaymentIntent(deps, job.data, jobLogger(job)), {
    ...options,
    limiter: { max: deps.stripeRequestsPerSecond ?? 20, duration: 1000 },
  });
  const workers = [eventsWorker, syncWorker];

  for (const worker of workers) {
    // Without an 'error' listener a Redis hiccup is an unhandled error that kills the process.
    worker.on('error', (error) => {
      if (!deps.outages?.redis.report(error)) deps.logger.error({ err: error, queue: worker.name }, 'worker error');
    });
    worker.on('completed', () => deps.metrics.jobs.inc({ queue: worker.name, result: 'completed' }));
    worker.on('failed', (job, error) => {
      const willRetry = job !== undefined && job.attemptsMade < (job.opts.attempts ?? 1) && !(error instanceof UnrecoverableError);
      deps.metrics.jobs.inc({ queue: worker.name, result: willRetry ? 'retried' : 'failed' });
      const details = { err: error, queue: worker.name, jobId: job?.id, attemptsMade: job?.attemptsMade };
      // During an outage every job fails the same way: the outage is logged once, the jobs at debug.
      const outage = willRetry && deps.outages?.postgres.report(error, isDatabaseUnavailableError);
      deps.logger[outage ? 'debug' : willRetry ? 'warn' : 'error'](details, willRetry ? 'job failed, will retry' : 'job failed for good');
    });
    worker.on('stalled', (jobId) => deps.logger.warn({ queue: worker.name, jobId }, 'job stalled; another worker takes it over'));
  }

  return {
    workers,
    async close() {
      const results = await Promise.allSettled(workers.map((worker) => worker.close()));
      const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure) throw failure.reason;
    },
  };
}
