import {
  JOBS,
  Stripe,
  eventOutOfScope,
  isDatabaseUnavailableError,
  type JobData,
  type JobKind,
  type Logger,
  type OutageLog,
  type ParsedJobData,
  type PrismaClient,
  type RedisConnection,
  type StripeEventJob,
  type StripeScope,
} from '@ledger/shared';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { paymentFactsFromEvent, MalformedEventError } from './event-facts.js';
import type { CreditBatcher } from './credit-batcher.js';
import {
  applyPaymentFacts,
  createCreditBatcher,
  recordEventFailure,
  recordEventNotOurs,
  type ApplyResult,
  type EventSource,
} from './ledger.js';
import type { WorkerMetrics } from './metrics.js';
import type { PaymentFact } from './payment-facts.js';
import { paymentFactsFromPaymentIntent } from './payment-sync.js';
import { resolveReview, ReviewRequestError, type ResolveResult } from './review.js';

/** What the order workers need; built by `main.ts` (or a test) and passed in. */
export interface OrderWorkerDeps {
  prisma: PrismaClient;
  /** A worker connection (`maxRetriesPerRequest: null`); BullMQ duplicates it for blocking calls. */
  connection: RedisConnection;
  prefix: string;
  stripe: Stripe;
  /** Which events are this deployment's (mode, connected accounts); default: test mode, no connected accounts. */
  scope?: StripeScope;
  logger: Logger;
  metrics: WorkerMetrics;
  /** Jobs one process runs at once, per queue. */
  concurrency: number;
  /** Group commit: payments per statement at most (1 turns batching off), and how long a batch waits to fill. */
  batchSize?: number;
  batchWaitMs?: number;
  /** Set by startOrderWorkers: the process's batcher, which every payment of every job goes through. */
  batcher?: CreditBatcher;
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

const TEST_MODE_SCOPE: StripeScope = { livemode: false, connectedAccounts: new Set() };

/** A single payment goes through the process's batcher (group commit); anything else through its own transaction. */
function applyFacts(deps: Pick<OrderWorkerDeps, 'prisma' | 'batcher'>, facts: PaymentFact[], source?: EventSource): Promise<ApplyResult> {
  const [only] = facts;
  if (deps.batcher && facts.length === 1 && only?.kind === 'payment_succeeded') return deps.batcher.credit({ fact: only, source });
  return applyPaymentFacts(deps.prisma, facts, source);
}

/** Applies one queued Stripe event. Exported for tests and replay; the worker calls it per job. */
/** Where a job's lines go: a pino logger, or {@link jobLog}'s per-job view of one. */
export type JobLog = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/**
 * The lines of one job, with its queue, id and attempt. Not a pino child: a child per job costs
 * the serialisation (and redaction) of its bindings on every job, a measurable share of the
 * worker's CPU at a thousand jobs a second.
 */
function jobLog(logger: Logger, job: Job): JobLog {
  const ids = { queue: job.queueName, jobId: job.id, attempt: job.attemptsMade + 1 };
  const line = (level: keyof JobLog) => (fields: object, message?: string) => logger[level]({ ...ids, ...fields }, message);
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') } as JobLog;
}

/**
 * A job's payload read with its catalog schema. Redis holds whatever was written (an older release,
 * a hand-made job): one that does not parse can never succeed, so it fails for good at once.
 */
function readJob<K extends JobKind>(kind: K, data: unknown): ParsedJobData<K> {
  const parsed = JOBS[kind].schema.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`not a ${kind} job: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data as ParsedJobData<K>;
}

export async function processStripeEvent(
  deps: Pick<OrderWorkerDeps, 'prisma' | 'metrics' | 'scope' | 'batcher'>,
  data: unknown,
  log: JobLog,
): Promise<ApplyResult> {
  const event = readJob('stripeEvents', data);
  const source = eventSource(event);
  // The receiver already answers these without queueing; replay and old jobs can still bring one.
  const outOfScope = eventOutOfScope(event, deps.scope ?? TEST_MODE_SCOPE);
  if (outOfScope) {
    const eventIsNew = await recordEventNotOurs(deps.prisma, source, outOfScope);
    deps.metrics.facts.inc({ kind: 'event', outcome: 'not_ours' });
    log.warn({ eventId: event.id, reason: outOfScope }, "event is not this deployment's; recorded, not applied");
    return { eventIsNew, outcomes: ['not_ours'], details: [outOfScope], credited: 0 };
  }
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
    result = await applyFacts(deps, facts, source);
  } catch (error) {
    await recordEventFailure(deps.prisma, source, error instanceof Error ? error.message : String(error)).catch((recordError: unknown) => {
      // With PostgreSQL down this fails for every job; the outage itself is logged once.
      log[isDatabaseUnavailableError(recordError) ? 'debug' : 'warn'](
        { err: recordError },
        'could not record the failed attempt in the inbox',
      );
    });
    throw error;
  }
  countOutcomes(deps.metrics, facts, result);
  if (result.credited > 0) deps.metrics.eventToCredit.observe(Math.max(0, Date.now() / 1000 - event.created));
  const fields = {
    eventIsNew: result.eventIsNew,
    outcomes: result.outcomes,
    ...(result.details.length > 0 ? { details: result.details } : {}),
  };
  if (result.outcomes.includes('held')) log.warn(fields, 'event held for an operator (npm run review -- list)');
  else log.info(fields, result.eventIsNew ? 'event applied' : 'event already processed');
  return result;
}

/** PaymentIntent statuses Stripe lets us cancel. https://docs.stripe.com/api/payment_intents/cancel */
const CANCELABLE = new Set<Stripe.PaymentIntent.Status>([
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'requires_capture',
]);

/**
 * Asks Stripe for a PaymentIntent and applies what it says (client confirm, reconciliation). An
 * `expire` job (the order outlived ORDER_TTL) cancels it first unless it is paid or on its way: a
 * canceled PaymentIntent cannot be paid any more, so the order can end.
 */
export async function syncPaymentIntent(
  deps: Pick<OrderWorkerDeps, 'prisma' | 'metrics' | 'stripe' | 'batcher'>,
  data: unknown,
  log: JobLog,
): Promise<ApplyResult> {
  const { paymentIntentId, reason } = readJob('paymentSync', data);
  let pi = await deps.stripe.paymentIntents.retrieve(paymentIntentId);
  if (reason === 'expire' && CANCELABLE.has(pi.status)) {
    try {
      pi = await deps.stripe.paymentIntents.cancel(
        paymentIntentId,
        { cancellation_reason: 'abandoned' },
        { idempotencyKey: `pi-cancel-${paymentIntentId}` },
      );
    } catch (error) {
      // Paid or moved on meanwhile (payment_intent_unexpected_state): apply what Stripe says now.
      if (!(error instanceof Stripe.errors.StripeInvalidRequestError)) throw error;
      pi = await deps.stripe.paymentIntents.retrieve(paymentIntentId);
    }
  }
  const facts = paymentFactsFromPaymentIntent(pi, { expiring: reason === 'expire' });
  const result = await applyFacts(deps, facts);
  countOutcomes(deps.metrics, facts, result);
  log.info({ paymentIntentStatus: pi.status, reason, outcomes: result.outcomes }, 'payment intent synced');
  return result;
}

/** Applies an operator's resolution queued by the admin API (`npm run review` calls resolveReview itself). */
export async function applyReviewResolution(deps: Pick<OrderWorkerDeps, 'prisma'>, data: unknown, log: JobLog): Promise<ResolveResult> {
  const request = readJob('reviews', data);
  try {
    const result = await resolveReview(deps.prisma, request);
    log.info({ orderId: request.orderId, decision: request.decision, resolvedBy: request.resolvedBy, result }, 'review resolution');
    return result;
  } catch (error) {
    // The operator sees why at once; retrying the same request cannot help.
    if (error instanceof ReviewRequestError) throw new UnrecoverableError(error.message);
    throw error;
  }
}

/** Starts the event, sync and review-resolution workers of one process, and their batcher. */
export function startOrderWorkers(workerDeps: OrderWorkerDeps): OrderWorkers {
  const batcher = createCreditBatcher(workerDeps.prisma, {
    maxBatch: workerDeps.batchSize ?? 1,
    maxWaitMs: workerDeps.batchWaitMs ?? 5,
    onBatch: (size, seconds) => {
      workerDeps.metrics.batchSize.observe(size);
      workerDeps.metrics.batchSeconds.observe(seconds);
    },
  });
  const deps = { ...workerDeps, batcher };
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
  const jobLogger = (job: Job) => jobLog(deps.logger, job);

  const eventsWorker = new Worker<JobData<'stripeEvents'>>(
    JOBS.stripeEvents.queue,
    async (job) => processStripeEvent(deps, job.data, jobLogger(job)),
    options,
  );
  // Each sync job is one Stripe request: the limiter keeps all of them within Stripe's rate limit.
  const syncWorker = new Worker<JobData<'paymentSync'>>(
    JOBS.paymentSync.queue,
    async (job) => syncPaymentIntent(deps, job.data, jobLogger(job)),
    {
      ...options,
      limiter: { max: deps.stripeRequestsPerSecond ?? 20, duration: 1000 },
    },
  );
  const reviewsWorker = new Worker<JobData<'reviews'>>(
    JOBS.reviews.queue,
    async (job) => applyReviewResolution(deps, job.data, jobLogger(job)),
    { ...options, concurrency: 1 },
  );
  const workers = [eventsWorker, syncWorker, reviewsWorker];

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
      // Closing a worker waits for its active jobs, which wait for their batches.
      const results = await Promise.allSettled([...workers.map((worker) => worker.close()), batcher.drain()]);
      const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure) throw failure.reason;
    },
  };
}
