import { QUEUES, type Logger, type OutageLog } from '@ledger/shared';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { WorkerMetrics } from './metrics.js';
import { reconcileOnce, type ReconcileDeps, type ReconcileOptions } from './reconcile.js';

export interface ReconcilerDeps extends Omit<ReconcileDeps, 'eventsQueue' | 'syncQueue'> {
  connection: Redis;
  prefix: string;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Redis outages are logged once by main.ts; without it each connection error is logged. */
  outages?: { redis: OutageLog };
  intervalSeconds: number;
  options: ReconcileOptions;
}

/**
 * The scheduled reconciliation: a BullMQ job scheduler (one upserted schedule however many worker
 * processes start) and a worker that runs one pass per job, one at a time.
 * https://docs.bullmq.io/guide/job-schedulers
 */
export async function startReconciler(deps: ReconcilerDeps): Promise<{ close(): Promise<void> }> {
  const queueOptions = { connection: deps.connection, prefix: deps.prefix };
  const eventsQueue = new Queue(QUEUES.stripeEvents, queueOptions);
  const syncQueue = new Queue(QUEUES.paymentSync, queueOptions);
  const scheduleQueue = new Queue(QUEUES.reconcile, queueOptions);
  await scheduleQueue.upsertJobScheduler('reconcile-every', { every: deps.intervalSeconds * 1000 }, {
    name: 'reconcile',
    opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
  });
  const worker = new Worker(
    QUEUES.reconcile,
    async () => {
      const report = await reconcileOnce({ ...deps, eventsQueue, syncQueue }, deps.options);
      deps.metrics.reconcileUncredited.set(report.uncredited.length);
      return { ...report, uncredited: report.uncredited.length };
    },
    { ...queueOptions, concurrency: 1 },
  );
  worker.on('error', (error) => {
    if (!deps.outages?.redis.report(error)) deps.logger.error({ err: error }, 'reconcile worker error');
  });
  worker.on('failed', (_job, error) => deps.logger.error({ err: error }, 'reconcile pass failed'));
  return {
    async close() {
      await Promise.allSettled([worker.close(), eventsQueue.close(), syncQueue.close(), scheduleQueue.close()]);
    },
  };
}
