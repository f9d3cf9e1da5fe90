import { createServer } from 'node:http';
import {
  createLogger,
  createPrismaClient,
  createWorkerConnection,
  runMain,
  stripeClientFromEnv,
  stripeScopeFromEnv,
} from '@ledger/shared';
import { loadWorkerEnv } from './env.js';
import { createWorkerMetrics } from './metrics.js';
import { startReconciler } from './reconcile-worker.js';
import { startOrderWorkers } from './worker.js';

await runMain(async () => {
  const env = loadWorkerEnv();
  const logger = createLogger('order-worker', env.LOG_LEVEL);
  const prisma = createPrismaClient(env.DATABASE_URL, { poolSize: env.WORKER_DB_POOL_SIZE, applicationName: 'order-worker' });
  const connection = createWorkerConnection(env.REDIS_URL);
  connection.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  const stripe = stripeClientFromEnv(env);
  const metrics = createWorkerMetrics();

  const workers = startOrderWorkers({
    prisma,
    connection,
    prefix: env.QUEUE_PREFIX,
    stripe,
    scope: stripeScopeFromEnv(env),
    logger,
    metrics,
    concurrency: env.WORKER_CONCURRENCY,
    batchSize: env.WORKER_BATCH_SIZE,
    batchWaitMs: env.WORKER_BATCH_WAIT_MS,
    lockDurationMs: env.WORKER_LOCK_DURATION_MS,
    stalledIntervalMs: Math.min(env.WORKER_LOCK_DURATION_MS, 30_000),
    stripeRequestsPerSecond: env.STRIPE_MAX_RPS,
  });
  const reconciler =
    env.RECONCILE_INTERVAL_SECONDS > 0
      ? await startReconciler({
          prisma,
          stripe,
          connection,
          prefix: env.QUEUE_PREFIX,
          metrics,
          logger,
          intervalSeconds: env.RECONCILE_INTERVAL_SECONDS,
          options: { staleAfterSeconds: env.RECONCILE_STALE_AFTER_SECONDS, orderTtlSeconds: env.ORDER_TTL, maxRequestsPerSecond: env.STRIPE_MAX_RPS },
        })
      : undefined;

  const metricsServer =
    env.WORKER_METRICS_PORT === undefined
      ? undefined
      : createServer((request, response) => {
          if (request.url !== '/metrics') {
            response.writeHead(404).end();
            return;
          }
          metrics.registry.metrics().then(
            (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
            () => response.writeHead(500).end(),
          );
        }).listen(env.WORKER_METRICS_PORT, '127.0.0.1');

  logger.info({ concurrency: env.WORKER_CONCURRENCY, prefix: env.QUEUE_PREFIX }, 'order worker started');

  // SIGTERM: stop taking jobs, let active ones finish (BullMQ's close waits for them), then close
  // Redis and PostgreSQL. Shutdown order: workers -> queue connections -> database.
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing active jobs');
    const steps = [
      () => workers.close(),
      async () => reconciler?.close(),
      () => new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve())),
      () => connection.quit(),
      () => prisma.$disconnect(),
    ];
    let failed = false;
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        failed = true;
        logger.error({ err: error }, 'shutdown step failed');
      }
    }
    logger.info('order worker stopped');
    process.exit(failed ? 1 : 0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
});
