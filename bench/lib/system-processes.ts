import path from 'node:path';
import { QUEUES } from '@ledger/shared';
import { startChild, type RunningProcess } from '@ledger/testkit';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { BenchConfig } from './config.js';
import { BENCH_WEBHOOK_SECRET } from './stripe-events.js';

/** What every process the bench starts needs to know about this run. */
export interface RunContext {
  config: BenchConfig;
  databaseUrl: string;
  logDir: string;
  /** Every child started in this run, so an interrupted run can stop them all. */
  children: Set<RunningProcess>;
}

/** Variables that would point a child at something other than the bench's own services. */
const NEUTRAL_ENV = {
  STRIPE_SECRET_KEY: '',
  STRIPE_API_BASE: '',
  ADMIN_TOKEN: '',
  WORKER_METRICS_PORT: '',
  WORKER_HEALTH_PORT: '',
  LOG_FORMAT: 'json',
};

/** The entry point of a system process in the run's runtime: compiled (as in production) or source. */
function entryPoint(context: RunContext, app: 'webhook-receiver/src/server' | 'order-worker/src/main'): string {
  return context.config.runtime === 'compiled' ? `apps/${app.replace('/src/', '/dist/')}.js` : `apps/${app}.ts`;
}

/** Where `--cpu-prof` writes the profiles of children started with `cpuProfile`, one directory each. */
const PROFILE_DIR = path.resolve('bench/profiles');

/**
 * Starts `script` as a child of the run, its output straight to `<logDir>/<name>.log` (piping it
 * through this process would cost CPU on the same two cores), and tracks it until it exits.
 */
function startBenchChild(
  context: RunContext,
  name: string,
  script: string,
  options: { env: Record<string, string>; cpuProfile?: boolean },
): RunningProcess {
  const child = startChild({
    name,
    script,
    env: options.env,
    logDir: context.logDir,
    output: 'file',
    // A directory per child and V8's own file names: with `--import tsx` the loader hooks run on a
    // thread of their own, which writes its own profile (the main thread's is the larger file).
    cpuProfileDir: options.cpuProfile ? path.join(PROFILE_DIR, `${name}-${Date.now()}`) : undefined,
  });
  context.children.add(child);
  void child.exited.then(() => context.children.delete(child));
  return child;
}

/** The real receiver (`apps/webhook-receiver`), listening on `port`. */
export async function startReceiver(
  context: RunContext,
  name: string,
  options: { port: number; prefix: string; env?: Record<string, string> },
): Promise<RunningProcess> {
  const child = startBenchChild(context, name, entryPoint(context, 'webhook-receiver/src/server'), {
    cpuProfile: context.config.cpuProfile.has('receiver'),
    env: {
      ...NEUTRAL_ENV,
      DATABASE_URL: context.databaseUrl,
      REDIS_URL: context.config.redisUrl,
      QUEUE_PREFIX: options.prefix,
      STRIPE_WEBHOOK_SECRET: BENCH_WEBHOOK_SECRET,
      PORT: String(options.port),
      HOST: '127.0.0.1',
      LOG_LEVEL: context.config.logLevel,
      ...options.env,
    },
  });
  // Probed over HTTP, not read from the log: a quieter BENCH_LOG_LEVEL hides the "listening" line.
  await child.waitUntil('answering /healthz', async () => (await fetch(`http://127.0.0.1:${options.port}/healthz`)).ok);
  return child;
}

/** The baseline server of the ingest benchmark. */
export async function startBareFastify(context: RunContext, name: string, port: number): Promise<RunningProcess> {
  const child = startBenchChild(context, name, 'bench/baselines/bare-fastify-server.ts', { env: { PORT: String(port) } });
  await child.waitUntil('listening', async () => (await fetch(`http://127.0.0.1:${port}/`)).status === 404);
  return child;
}

/** The real order worker (`apps/order-worker`), reconciliation off, ready to take jobs. */
export async function startOrderWorker(
  context: RunContext,
  name: string,
  prefix: string,
  options: { batchSize?: number } = {},
): Promise<RunningProcess> {
  const child = startBenchChild(context, name, entryPoint(context, 'order-worker/src/main'), {
    cpuProfile: context.config.cpuProfile.has('worker'),
    env: {
      ...NEUTRAL_ENV,
      DATABASE_URL: context.databaseUrl,
      REDIS_URL: context.config.redisUrl,
      QUEUE_PREFIX: prefix,
      WORKER_CONCURRENCY: String(context.config.workerConcurrency),
      WORKER_BATCH_SIZE: String(options.batchSize ?? context.config.workerBatchSize),
      WORKER_BATCH_WAIT_MS: String(context.config.workerBatchWaitMs),
      RECONCILE_INTERVAL_SECONDS: '0',
      LOG_LEVEL: context.config.logLevel,
    },
  });
  await child.waitUntil('registered on the events queue', () => queueHasWorker(context.config.redisUrl, prefix));
  return child;
}

/** The plain-pg baseline worker (the same batched statement through `pg`), ready to take jobs. */
export async function startPlainPgWorker(context: RunContext, name: string, options: { prefix: string }): Promise<RunningProcess> {
  const child = startBenchChild(context, name, 'bench/baselines/plain-pg-worker.ts', {
    env: {
      DATABASE_URL: context.databaseUrl,
      REDIS_URL: context.config.redisUrl,
      QUEUE_PREFIX: options.prefix,
      WORKER_CONCURRENCY: String(context.config.workerConcurrency),
      WORKER_BATCH_SIZE: String(context.config.workerBatchSize),
      WORKER_BATCH_WAIT_MS: String(context.config.workerBatchWaitMs),
    },
  });
  await child.waitUntil('registered on the events queue', () => queueHasWorker(context.config.redisUrl, options.prefix));
  return child;
}

/**
 * Whether a worker's connection is registered on the events queue: "started" in a log only means
 * constructed, and a clock started before the worker can fetch would count its start-up.
 */
async function queueHasWorker(redisUrl: string, prefix: string): Promise<boolean> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  const queue = new Queue(QUEUES.stripeEvents, { connection, prefix });
  try {
    return (await queue.getWorkersCount()) > 0;
  } finally {
    await queue.close();
    connection.disconnect();
  }
}
