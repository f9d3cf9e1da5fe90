import { expireHolds } from '@ledger/ledger';
import { JOBS, QUEUES, tracing, type Logger, type OutageLog, type RedisConnection } from '@ledger/shared';
import { Queue, Worker, type Job } from 'bullmq';
import { jobLog, readJob } from '../jobs/job-kit.js';
import { stripeBackoff, type StripeBackoffOptions } from '../jobs/stripe-rate-limit.js';
import { tracedJob } from '../jobs/tracing.js';
import { recoverGenerationFailure } from './event-recovery.js';
import { pruneInbox } from './inbox-retention.js';
import type { WorkerMetrics } from '../metrics.js';
import { reconcileOnce, type ReconcileDeps, type ReconcileOptions } from './reconcile.js';

export interface ReconcilerDeps extends Omit<ReconcileDeps, 'eventsQueue' | 'syncQueue'> {
  connection: RedisConnection;
  prefix: string;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Redis outages are logged once by main.ts; without it each connection error is logged. */
  outages?: { redis: OutageLog };
  /** Seconds between reconciliation passes (0: no reconciliation or inbox retention schedule from this process). */
  intervalSeconds: number;
  /** Seconds between sweeps recording expired holds (0: no sweep schedule from this process). */
  holdExpirySeconds: number;
  options: ReconcileOptions;
  /** Inbox rows older than this many days are removed, once an hour. */
  inboxRetentionDays: number;
  /** Warn when the checkpoint is older than this many days (RECONCILE_CHECKPOINT_WARN_DAYS; Stripe keeps 30). */
  checkpointWarnDays?: number;
  /** The pause after a Stripe 429 (tests shorten it). */
  stripeBackoff?: StripeBackoffOptions;
}

/**
 * Records the checkpoint's age (ledger_reconcile_checkpoint_age_seconds, recomputed at each scrape)
 * and warns, once per pass, when it nears Stripe's 30 days: events older than that are no longer
 * listed, so a checkpoint held back by an event the inbox never records would lose what follows it.
 * https://docs.stripe.com/api/events
 */
function warnIfCheckpointOld(deps: Pick<ReconcilerDeps, 'metrics' | 'logger'>, checkpoint: number, warnDays: number): void {
  deps.metrics.reconcileCheckpoint.at = checkpoint;
  const ageSeconds = Math.max(0, Date.now() / 1000 - checkpoint);
  deps.metrics.reconcileCheckpointAge.set(ageSeconds);
  if (ageSeconds > warnDays * 86_400) {
    deps.logger.warn(
      { checkpoint, ageDays: Math.floor(ageSeconds / 86_400), warnDays },
      `reconcile: the checkpoint is ${Math.floor(ageSeconds / 86_400)} days old (warn at ${warnDays}); Stripe lists events of the last 30 days only`,
    );
  }
}

/** How often the inbox retention runs; each run deletes at most 100 batches of 1,000 rows. */
const INBOX_RETENTION_EVERY_MS = 3600 * 1000;

/**
 * The scheduled maintenance: BullMQ job schedulers (one upserted schedule each, however many worker
 * processes start) for the reconciliation pass, the inbox retention and the hold expiry sweep, and
 * a worker that runs them one at a time. https://docs.bullmq.io/guide/job-schedulers
 */
export async function startReconciler(deps: ReconcilerDeps): Promise<{ close(): Promise<void> }> {
  const queueOptions = { connection: deps.connection, prefix: deps.prefix };
  const eventsQueue = new Queue(QUEUES.stripeEvents, queueOptions);
  const syncQueue = new Queue(QUEUES.paymentSync, queueOptions);
  const scheduleQueue = new Queue(QUEUES.reconcile, queueOptions);
  const kept = { removeOnComplete: JOBS.reconcile.removeOnComplete, removeOnFail: JOBS.reconcile.removeOnFail };
  if (deps.intervalSeconds > 0) {
    await scheduleQueue.upsertJobScheduler('reconcile-every', { every: deps.intervalSeconds * 1000 }, { name: 'reconcile', opts: kept });
    await scheduleQueue.upsertJobScheduler(
      'inbox-retention-every',
      { every: INBOX_RETENTION_EVERY_MS },
      { name: 'inbox-retention', opts: kept },
    );
  }
  if (deps.holdExpirySeconds > 0) {
    await scheduleQueue.upsertJobScheduler(
      'hold-expiry-every',
      { every: deps.holdExpirySeconds * 1000 },
      { name: 'hold-expiry', opts: kept },
    );
  }
  // A 429 delays the pass (or recovery) that hit it, not the hold expiry sweep of the same queue.
  const backoff = stripeBackoff({ metrics: deps.metrics, log: (job) => jobLog(deps.logger, job) }, 'job', deps.stripeBackoff);
  const warnDays = deps.checkpointWarnDays ?? 20;
  const maintain = async (job: Job, token?: string) => {
    if (job.name === 'hold-expiry') {
      const expired = await expireHolds(deps.prisma);
      deps.metrics.holdsExpired.inc(expired);
      if (expired > 0) deps.logger.info({ expired }, `hold expiry: ${expired} hold(s) recorded as expired`);
      return { expired };
    }
    // Stripe asked for it (a thin event): whichever maintenance worker takes it recovers.
    if (job.name === 'event-generation-failure') {
      const recovery = await backoff(worker, job, token, () =>
        recoverGenerationFailure({ ...deps, eventsQueue, syncQueue }, deps.options, readJob('eventRecovery', job.data)),
      );
      return {
        ...recovery,
        reconcile: { eventsEnqueued: recovery.reconcile.eventsEnqueued, eventsListed: recovery.reconcile.eventsListed },
      };
    }
    // A schedule left in Redis by an earlier deploy does not reconcile from a process told not to.
    if (deps.intervalSeconds === 0) return { skipped: job.name };
    if (job.name === 'inbox-retention') {
      const pruned = await pruneInbox(deps.prisma, { keepDays: deps.inboxRetentionDays });
      deps.logger.info(pruned, `inbox retention: ${pruned.deleted} event(s) older than ${deps.inboxRetentionDays} days removed`);
      return pruned;
    }
    const report = await backoff(worker, job, token, () => reconcileOnce({ ...deps, eventsQueue, syncQueue }, deps.options));
    deps.metrics.reconcileUncredited.set(report.uncredited.length);
    warnIfCheckpointOld(deps, report.checkpoint, warnDays);
    return { ...report, uncredited: report.uncredited.length };
  };
  // Tracing on: each pass, sweep and recovery in a span of its own (Stripe's, PostgreSQL's and
  // Redis' calls under it); a recovery continues the trace of the thin event that asked for it.
  const worker: Worker = new Worker(QUEUES.reconcile, tracing ? tracedJob(tracing, QUEUES.reconcile, maintain) : maintain, {
    ...queueOptions,
    concurrency: 1,
  });
  // Every connection reports its errors (a Redis outage is logged once by main.ts's outage log);
  // one without a listener would print ioredis' "Unhandled error event" on every reconnect.
  const reportError = (error: Error) => {
    if (!deps.outages?.redis.report(error)) deps.logger.error({ err: error }, 'maintenance queue error');
  };
  worker.on('error', reportError);
  for (const queue of [eventsQueue, syncQueue, scheduleQueue]) queue.on('error', reportError);
  worker.on('failed', (_job, error) => deps.logger.error({ err: error }, 'reconcile pass failed'));
  return {
    async close() {
      await Promise.allSettled([worker.close(), eventsQueue.close(), syncQueue.close(), scheduleQueue.close()]);
    },
  };
}
