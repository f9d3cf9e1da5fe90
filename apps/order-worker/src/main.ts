import {
  OutageLog,
  createPrismaClient,
  ensureCanListen,
  createWorkerConnection,
  endpointOf,
  redisEndpoint,
  listenError,
  observeStripeCalls,
  runService,
  stripeClientFromEnv,
  stripeScopeFromEnv,
} from '@ledger/shared';
import { reviewBacklog } from '@ledger/ledger';
import { loadWorkerEnv, workerEnvSchema, type WorkerEnv } from './env.js';
import { startHealthServer, type WorkerRoute } from './health-server.js';
import { createWorkerMetrics } from './metrics.js';
import { readiness, type ReadinessChecks } from './readiness.js';
import { startReconciler } from './operations/reconcile-worker.js';
import { startOrderWorkers } from './jobs/workers.js';
import { warmUpWorker } from './warm-up.js';

/** Below the scrape's own 0.5 s bound, so a dependency that does not answer shows as down, not as no answer. */
const METRICS_CHECK_TIMEOUT_MS = 400;

/** Which routes each configured port serves (both variables may name one port). */
function httpRoutes(env: WorkerEnv): Map<number, Set<WorkerRoute>> {
  const routes = new Map<number, Set<WorkerRoute>>();
  const add = (port: number | undefined, paths: WorkerRoute[]) => {
    if (port === undefined) return;
    const served = routes.get(port) ?? new Set<WorkerRoute>();
    for (const path of paths) served.add(path);
    routes.set(port, served);
  };
  add(env.WORKER_HEALTH_PORT, ['/healthz', '/readyz']);
  add(env.WORKER_METRICS_PORT, ['/metrics']);
  return routes;
}

await runService({
  name: 'order-worker',
  help: {
    usage: 'npm run worker',
    summary:
      'One order-worker process: applies queued Stripe events and payment syncs, and runs the scheduled reconciliation. Run it N times to scale out; configured by the environment only. Runs compiled (npm run build first: node apps/order-worker/dist/main.js); npm start runs it from source.',
    environment: Object.keys(workerEnvSchema.shape),
    exitCodes: [
      [0, 'stopped by SIGTERM or SIGINT after finishing active jobs'],
      [1, 'bad environment, PostgreSQL or Redis unreachable at start, port taken, or a failed shutdown'],
      [64, 'unknown option'],
    ],
  },
  loadEnv: loadWorkerEnv,
  dependencies: (env) => ({ postgres: env.DATABASE_URL, redis: env.REDIS_URL }),
  // Active jobs finish before the worker exits; docker-compose gives it 60 s before SIGKILL.
  graceMs: 50_000,
  async start({ env, logger, onClose }) {
    const prisma = createPrismaClient(env.DATABASE_URL, { poolSize: env.WORKER_DB_POOL_SIZE, applicationName: 'order-worker' });
    onClose('postgres', () => prisma.$disconnect());
    const checkPostgres = () => prisma.$queryRaw`SELECT 1`;
    const outages = {
      postgres: new OutageLog(logger, 'PostgreSQL', endpointOf(env.DATABASE_URL, 5432), checkPostgres),
      redis: new OutageLog(logger, 'Redis', redisEndpoint(env.REDIS_URL)),
    };
    onClose('outage probes', () => {
      for (const outage of Object.values(outages)) outage.close();
    });

    const connection = createWorkerConnection(env.REDIS_URL);
    onClose('redis', () => connection.quit());
    // ioredis retries forever on its own; one line when Redis goes away, one when it is back.
    connection.on('error', (error) => {
      if (!outages.redis.report(error)) logger.warn({ err: error }, 'redis connection error');
    });
    connection.on('ready', () => outages.redis.recovered());

    // Ready means fast: the hot path runs WARM_UP_EVENTS times before any real job is taken
    // (warm-up.ts); a port that cannot be listened on stops the start before that.
    const routes = httpRoutes(env);
    for (const port of routes.keys()) {
      const variable = port === env.WORKER_HEALTH_PORT ? 'WORKER_HEALTH_PORT' : 'WORKER_METRICS_PORT';
      await ensureCanListen({ host: env.WORKER_HTTP_HOST, port, variable });
    }
    const warmUp = await warmUpWorker({
      prisma,
      connection,
      prefix: env.QUEUE_PREFIX,
      events: env.WARM_UP_EVENTS,
      concurrency: env.WORKER_CONCURRENCY,
      batchSize: env.WORKER_BATCH_SIZE,
      batchWaitMs: env.WORKER_BATCH_WAIT_MS,
      poolSize: env.WORKER_DB_POOL_SIZE,
    }).catch((error: unknown) => {
      // Redis or PostgreSQL went away meanwhile (or Redis lost the warm-up's jobs): that costs
      // speed only. The worker takes jobs anyway; its jobs retry through such an outage.
      logger.warn({ err: error }, 'warm-up did not finish; taking jobs anyway (the first may be slower)');
      return undefined;
    });

    const stripe = stripeClientFromEnv(env);
    const metrics = createWorkerMetrics();
    observeStripeCalls(stripe, metrics.stripeCalls.observe);
    const workers = startOrderWorkers({
      prisma,
      connection,
      prefix: env.QUEUE_PREFIX,
      stripe,
      scope: stripeScopeFromEnv(env),
      logger,
      metrics,
      outages,
      concurrency: env.WORKER_CONCURRENCY,
      batchSize: env.WORKER_BATCH_SIZE,
      batchWaitMs: env.WORKER_BATCH_WAIT_MS,
      lockDurationMs: env.WORKER_LOCK_DURATION_MS,
      stalledIntervalMs: Math.min(env.WORKER_LOCK_DURATION_MS, 30_000),
      stripeRequestsPerSecond: env.STRIPE_MAX_RPS,
    });
    // Stops taking jobs and lets active ones finish (BullMQ's close waits for them).
    onClose('order workers', () => workers.close());

    if (env.RECONCILE_INTERVAL_SECONDS > 0 || env.HOLD_EXPIRY_INTERVAL_SECONDS > 0) {
      const reconciler = await startReconciler({
        prisma,
        stripe,
        connection,
        prefix: env.QUEUE_PREFIX,
        metrics,
        logger,
        outages,
        intervalSeconds: env.RECONCILE_INTERVAL_SECONDS,
        holdExpirySeconds: env.HOLD_EXPIRY_INTERVAL_SECONDS,
        inboxRetentionDays: env.INBOX_RETENTION_DAYS,
        checkpointWarnDays: env.RECONCILE_CHECKPOINT_WARN_DAYS,
        options: {
          staleAfterSeconds: env.RECONCILE_STALE_AFTER_SECONDS,
          orderTtlSeconds: env.ORDER_TTL,
          maxRequestsPerSecond: env.STRIPE_MAX_RPS,
        },
      });
      onClose('reconciler', () => reconciler.close());
    }

    const checks: ReadinessChecks = {
      postgres: checkPostgres,
      // Not a PING queued behind a reconnect: a connection that is not ready is down.
      redis: async () => {
        if (connection.status !== 'ready') throw new Error(`redis ${connection.status}`);
        await connection.ping();
      },
      workersRunning: () => workers.workers.every((worker) => worker.isRunning()),
    };
    // Read only when /metrics is scraped (ledger_ready, ledger_dependency_up, the review backlog).
    metrics.scrapeSources.readiness = () => readiness(checks, METRICS_CHECK_TIMEOUT_MS);
    metrics.scrapeSources.reviewBacklog = () => reviewBacklog(prisma);

    if (routes.size > 0) {
      const http = await startHealthServer({
        host: env.WORKER_HTTP_HOST,
        routes,
        metrics,
        checks,
      }).catch((error: unknown) => {
        const port = (error as { port?: number }).port ?? env.WORKER_HEALTH_PORT ?? env.WORKER_METRICS_PORT ?? 0;
        const variable = port === env.WORKER_HEALTH_PORT ? 'WORKER_HEALTH_PORT' : 'WORKER_METRICS_PORT';
        throw listenError(error, { host: env.WORKER_HTTP_HOST, port, variable });
      });
      onClose('health and metrics listeners', () => http.close());
    }

    logger.info(
      {
        concurrency: env.WORKER_CONCURRENCY,
        prefix: env.QUEUE_PREFIX,
        stripeApiVersion: env.STRIPE_API_VERSION,
        warmUpEvents: warmUp?.events ?? 0,
        warmUpMs: warmUp?.ms,
      },
      'order worker started',
    );
  },
});
