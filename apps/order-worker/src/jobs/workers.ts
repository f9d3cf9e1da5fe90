import { JOBS, isDatabaseUnavailableError, traceIdOf, tracing, type JobData, type TraceCarrier } from '@ledger/shared';
import { createCreditBatcher } from '@ledger/ledger';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { jobLog, type OrderWorkerDeps } from './job-kit.js';
import { syncPaymentIntent } from './payment-sync.js';
import { stripeBackoff } from './stripe-rate-limit.js';
import { applyReviewResolution } from './review-resolution.js';
import { processStripeEvent } from './stripe-event.js';
import { EVENT_JOB_SPAN, tracedJob } from './tracing.js';

export type { OrderWorkerDeps } from './job-kit.js';

/** The running workers of one process. */
export interface OrderWorkers {
  workers: Worker[];
  /** Stops taking jobs, lets active jobs finish, then closes. Runs every step even if one fails. */
  close(): Promise<void>;
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

  // An event rarely calls Stripe (only when its payload lacks what a fact needs): a 429 then delays
  // that job alone, without using an attempt; the other events keep flowing.
  const eventsBackoff = stripeBackoff({ metrics: deps.metrics, log: jobLogger }, 'job', deps.stripeBackoff);
  const processEvent = async (job: Job<JobData<'stripeEvents'>>, token?: string) =>
    eventsBackoff(eventsWorker, job, token, () => processStripeEvent(deps, job.data, jobLogger(job)));
  // Tracing on: each event job in a span of the webhook's trace (tracing.ts); off: the plain processor.
  const eventsWorker: Worker<JobData<'stripeEvents'>> = new Worker<JobData<'stripeEvents'>>(
    JOBS.stripeEvents.queue,
    tracing ? tracedJob(tracing, JOBS.stripeEvents.queue, processEvent, EVENT_JOB_SPAN) : processEvent,
    options,
  );
  // Each sync job is one Stripe request: the limiter keeps all of them within Stripe's rate limit,
  // and a 429 pauses the queue with a growing delay instead of failing the job.
  const syncBackoff = stripeBackoff({ metrics: deps.metrics, log: jobLogger }, 'queue', deps.stripeBackoff);
  const processSync = async (job: Job<JobData<'paymentSync'>>, token?: string) =>
    syncBackoff(syncWorker, job, token, () => syncPaymentIntent(deps, job.data, jobLogger(job)));
  const syncWorker: Worker<JobData<'paymentSync'>> = new Worker<JobData<'paymentSync'>>(
    JOBS.paymentSync.queue,
    tracing
      ? tracedJob(tracing, JOBS.paymentSync.queue, processSync, {
          of: (job) => ({ 'stripe.payment_intent.id': String(job.data?.paymentIntentId), 'ledger.sync_reason': String(job.data?.reason) }),
          result: EVENT_JOB_SPAN.result,
        })
      : processSync,
    {
      ...options,
      limiter: { max: deps.stripeRequestsPerSecond ?? 20, duration: 1000 },
    },
  );
  const processReview = async (job: Job<JobData<'reviews'>>) => applyReviewResolution(deps, job.data, jobLogger(job));
  const reviewsWorker = new Worker<JobData<'reviews'>>(
    JOBS.reviews.queue,
    tracing
      ? tracedJob(tracing, JOBS.reviews.queue, processReview, {
          of: (job) => ({ 'ledger.order_id': String(job.data?.orderId), 'ledger.review_decision': String(job.data?.decision) }),
          result: (result) => ({
            'ledger.review_outcome': result.outcome,
            ...(result.outcome === 'unknown_order' ? {} : { 'ledger.account_id': result.accountId }),
          }),
        })
      : processReview,
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
      const details = {
        err: error,
        queue: worker.name,
        jobId: job?.id,
        // An event job's id is its event id: the line is found by the same grep as the event's others.
        ...(worker.name === JOBS.stripeEvents.queue ? { eventId: job?.id } : {}),
        attemptsMade: job?.attemptsMade,
        ...(tracing ? { traceId: traceIdOf((job?.data as { trace?: TraceCarrier } | undefined)?.trace) } : {}),
      };
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
