/**
 * Baseline of the worker benchmark: the worker's batched credit statement through plain `pg`
 * (./plain-pg-credit.ts), pulling the same jobs from the same BullMQ queue at the same concurrency
 * and batch size as the real worker, so the ratio isolates what the real worker adds around the SQL.
 *
 *   DATABASE_URL=… REDIS_URL=… QUEUE_PREFIX=… WORKER_CONCURRENCY=32 WORKER_BATCH_SIZE=32 WORKER_BATCH_WAIT_MS=5 node --import tsx bench/baselines/plain-pg-worker.ts
 */
import { QUEUES, createWorkerConnection } from '@ledger/shared';
import { Worker } from 'bullmq';
import pg from 'pg';
import { plainPgBatcher, readPaymentCredit } from './plain-pg-credit.js';

const concurrency = Number(process.env.WORKER_CONCURRENCY ?? 32);
const batchSize = Number(process.env.WORKER_BATCH_SIZE ?? 32);
const batchWaitMs = Number(process.env.WORKER_BATCH_WAIT_MS ?? 5);
// The real worker's pool (WORKER_DB_POOL_SIZE's default): batches need few connections.
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10, application_name: 'bench-plain-pg' });
const connection = createWorkerConnection(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const batcher = plainPgBatcher(pool, { maxBatch: batchSize, maxWaitMs: batchWaitMs });

const worker = new Worker(QUEUES.stripeEvents, async (job) => batcher.credit(readPaymentCredit(job.id, job.data)), {
  connection,
  prefix: process.env.QUEUE_PREFIX ?? 'ledger',
  concurrency,
  // The real worker's defaults, so both hold and renew job locks alike.
  lockDuration: 30_000,
  stalledInterval: 30_000,
});
// Without an 'error' listener a Redis hiccup would kill the process mid-measurement.
worker.on('error', (error) => process.stderr.write(`worker error: ${error.message}\n`));
worker.on('failed', (job, error) => process.stderr.write(`job ${job?.id} failed: ${error.message}\n`));

const shutdown = async () => {
  // Every step runs even when one fails; workers first, then their connections.
  const steps: (() => Promise<unknown>)[] = [() => worker.close(), () => batcher.drain(), () => connection.quit(), () => pool.end()];
  for (const step of steps) await step().catch(() => undefined);
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
process.stdout.write(`plain pg worker started (concurrency ${concurrency}, batch ${batchSize}, wait ${batchWaitMs} ms)\n`);
