import { createStripeClient, createWorkerConnection, type PrismaClient, type Stripe } from '@ledger/shared';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createWorkerMetrics } from '../../apps/order-worker/src/metrics.js';
import { startOrderWorkers, type OrderWorkerDeps } from '../../apps/order-worker/src/jobs/workers.js';
import { TEST_REDIS_URL } from './env.js';

/** Order workers inside the test process, with their own Redis connection; `close` ends both. */
export function startTestWorkers(
  options: { prisma: PrismaClient; prefix: string; stripe?: Stripe } & Partial<Omit<OrderWorkerDeps, 'connection'>>,
) {
  const connection = createWorkerConnection(TEST_REDIS_URL);
  const workers = startOrderWorkers({
    // Jobs that reach Stripe get a real client; the others must not call this unreachable one.
    stripe: createStripeClient('sk_test_unused', 'http://127.0.0.1:9'),
    logger: pino({ level: 'silent' }),
    metrics: createWorkerMetrics(new Registry()),
    concurrency: 8,
    // Group commit on, as in production, with small batches so tests see both batches and stragglers.
    batchSize: 8,
    batchWaitMs: 5,
    stripeRequestsPerSecond: 100,
    ...options,
    connection,
  });
  return {
    workers,
    async close() {
      await workers.close().finally(() => connection.disconnect());
    },
  };
}
