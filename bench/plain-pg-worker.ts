/**
 * Baseline of the worker benchmark: the plain-pg credit of ./plain-pg-credit.ts pulling the same
 * jobs from the same BullMQ queue at the same concurrency as the real worker, so the ratio isolates
 * what the real worker adds around the SQL (Prisma, zod, logs).
 *
 * BENCH_PLAIN_MODE=statements (default): ledger.ts's general path, its statements one by one in a transaction;
 * BENCH_PLAIN_MODE=single-statement: ledger.ts's one-statement path.
 *
 *   DATABASE_URL=… REDIS_URL=… QUEUE_PREFIX=… WORKER_CONCURRENCY=16 node --import tsx bench/plain-pg-worker.ts
 */
import { QUEUES, createWorkerConnection } from '@ledger/shared';
import { Worker } from 'bullmq';
import pg from 'pg';
import { creditWithOneStatement, creditWithStatements, readPaymentSucceeded } from './plain-pg-credit.js';

const concurrency = Number(process.env.WORKER_CONCURRENCY ?? 16);
const mode = process.env.BENCH_PLAIN_MODE === 'single-statement' ? 'single-statement' : 'statements';
// One connection per concurrent job: each job holds its client for the whole transaction.
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: concurrency, application_name: 'bench-plain-pg' });
const connection = createWorkerConnection(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

const credit = mode === 'single-statement' ? creditWithOneStatement : creditWithStatements;
const worker = new Worker(QUEUES.stripeEvents, async (job) => credit(pool, readPaymentSucceeded(job.id, job.data)), {
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
  const steps: (() => Promise<unknown>)[] = [() => worker.close(), () => connection.quit(), () => pool.end()];
  for (const step of steps) await step().catch(() => undefined);
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
process.stdout.write(`plain pg worker started (${mode}, concurrency ${concurrency})\n`);
