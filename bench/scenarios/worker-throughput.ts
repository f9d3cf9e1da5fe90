import { QUEUES, jobOptions, stripeEventJobData } from '@ledger/shared';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { RunningProcess } from '@ledger/testkit';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkBatchCredited, lastLedgerId, seedOrders, type BenchDatabase } from '../lib/bench-database.js';
import { deleteKeysWithPrefix } from '../lib/bench-redis.js';
import { readServiceCpu, serviceCpuUsed } from '../lib/service-cpu.js';
import { median } from '../lib/stats.js';
import { benchOrder, paymentSucceededEvent } from '../lib/stripe-events.js';
import { startOrderWorker, startPlainPgWorker, type RunContext } from '../lib/system-processes.js';

/**
 * The implementations drained: the real worker (`real`, group commit as configured), the same
 * worker with batching off (`unbatched`, WORKER_BATCH_SIZE=1: one statement per payment), and the
 * same batched statement through plain `pg` (`plain`, ../baselines/plain-pg-worker.ts).
 */
export type WorkerVariant = 'real' | 'unbatched' | 'plain';

export interface DrainRun {
  variant: WorkerVariant;
  events: number;
  seconds: number;
  creditsPerSecond: number;
  /** CPU time of the worker process per credit while draining, in ms. */
  cpuMsPerCredit: number;
  /** Redis and PostgreSQL (the worker's backends) CPU per credit while draining, in ms. */
  redisCpuMsPerCredit: number;
  postgresCpuMsPerCredit: number;
  /** Peak RSS of the worker process, in bytes. */
  peakRss: number;
}

export interface WorkerResult {
  events: number;
  concurrency: number;
  runs: DrainRun[];
  /** Median credits/s of each variant. */
  creditsPerSecond: Record<WorkerVariant, number>;
  /** Median worker-process CPU ms per credit of each variant. */
  cpuMsPerCredit: Record<WorkerVariant, number>;
  /** Median PostgreSQL (the variant's backends) and Redis CPU ms per credit of each variant. */
  postgresCpuMsPerCredit: Record<WorkerVariant, number>;
  redisCpuMsPerCredit: Record<WorkerVariant, number>;
  /** Highest peak RSS of each variant's process, in bytes. */
  peakRss: Record<WorkerVariant, number>;
  batchSize: number;
  batchWaitMs: number;
  /** Real worker ÷ the same worker with batching off (target ≥ 4×), and ÷ plain pg with the same SQL (target ≥ 0.8×). */
  ratioTo: Record<Exclude<WorkerVariant, 'real'>, number>;
}

/** Adds one `payment_intent.succeeded` job per order, exactly as the receiver would queue them. */
async function enqueueBatch(queue: Queue, batch: string, count: number): Promise<void> {
  const chunk = 500;
  for (let start = 0; start < count; start += chunk) {
    const jobs = [];
    for (let index = start; index < Math.min(count, start + chunk); index += 1) {
      const event = paymentSucceededEvent(benchOrder(batch, index));
      jobs.push({ name: event.type, data: stripeEventJobData(event), opts: jobOptions('stripeEvents', event.id) });
    }
    await queue.addBulk(jobs);
  }
}

/** Polls until `count` ledger entries exist above `afterId`; returns when the last one showed up. */
async function waitForCredits(db: BenchDatabase, afterId: number, count: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ledger_entries WHERE id > $1', [afterId]);
    const seenAt = performance.now();
    if ((rows[0]?.n ?? 0) >= count) return seenAt;
    if (seenAt > deadline) throw new Error(`only ${rows[0]?.n ?? 0}/${count} credits after ${timeoutMs} ms`);
    await sleep(10);
  }
}

async function drain(context: RunContext, db: BenchDatabase, runPrefix: string, variant: WorkerVariant, round: number): Promise<DrainRun> {
  const { config } = context;
  const batch = `wk${round}${variant}`;
  const prefix = `${runPrefix}-${batch}`;
  await seedOrders(db.pool, batch, config.workerEvents);
  const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: 3 });
  const queue = new Queue(QUEUES.stripeEvents, { connection, prefix });
  let worker: RunningProcess | undefined;
  try {
    // Paused while the worker starts, so the clock measures draining and not process start-up.
    await queue.pause();
    await enqueueBatch(queue, batch, config.workerEvents);
    worker =
      variant === 'plain'
        ? await startPlainPgWorker(context, `plain-${batch}`, { prefix })
        : await startOrderWorker(context, `worker-${batch}`, prefix, variant === 'unbatched' ? { batchSize: 1 } : {});
    const afterId = await lastLedgerId(db.pool);
    const database = { pool: db.pool, name: db.name };
    const servicesBefore = await readServiceCpu(config.redisUrl, database);
    const cpuBefore = worker.cpuMs();
    const startedAt = performance.now();
    await queue.resume();
    const doneAt = await waitForCredits(db, afterId, config.workerEvents, Math.max(60_000, config.workerEvents * 20));
    const cpuMsPerCredit = (worker.cpuMs() - cpuBefore) / config.workerEvents;
    const services = serviceCpuUsed(servicesBefore, await readServiceCpu(config.redisUrl, database));
    const peakRss = worker.memory().peakRss;
    const problem = await checkBatchCredited(db.pool, batch, config.workerEvents);
    if (problem) throw new Error(`${variant} worker, batch ${batch}: ${problem}`);
    const seconds = (doneAt - startedAt) / 1000;
    return {
      variant,
      events: config.workerEvents,
      seconds,
      creditsPerSecond: config.workerEvents / seconds,
      cpuMsPerCredit,
      redisCpuMsPerCredit: services.redisMs / config.workerEvents,
      postgresCpuMsPerCredit: services.postgresMs / config.workerEvents,
      peakRss,
    };
  } finally {
    await worker?.stop();
    await queue.close();
    connection.disconnect();
    await deleteKeysWithPrefix(config.redisUrl, `${prefix}:`);
  }
}

/**
 * Benchmark 2: the real worker, the same worker unbatched and the plain-pg baseline each drain the
 * same number of pre-enqueued `payment_intent.succeeded` jobs from BullMQ (fresh orders each time),
 * at the same concurrency; the variants take turns going first from round to round.
 */
export async function runWorkerBenchmark(context: RunContext, db: BenchDatabase, runPrefix: string): Promise<WorkerResult> {
  const { config } = context;
  const variants: WorkerVariant[] = ['real', 'unbatched', 'plain'];
  const runs: DrainRun[] = [];
  for (let round = 1; round <= config.rounds; round += 1) {
    const order = [...variants.slice((round - 1) % variants.length), ...variants.slice(0, (round - 1) % variants.length)];
    for (const variant of order) runs.push(await drain(context, db, runPrefix, variant, round));
  }
  /** One figure per variant: `aggregate` over the rounds of `measure`. */
  const byVariant = (measure: (run: DrainRun) => number, aggregate: (values: number[]) => number = median) => {
    const of = (variant: WorkerVariant) => aggregate(runs.filter((run) => run.variant === variant).map(measure));
    return { real: of('real'), unbatched: of('unbatched'), plain: of('plain') };
  };
  const creditsPerSecond = byVariant((run) => run.creditsPerSecond);
  return {
    events: config.workerEvents,
    concurrency: config.workerConcurrency,
    runs,
    creditsPerSecond,
    cpuMsPerCredit: byVariant((run) => run.cpuMsPerCredit),
    peakRss: byVariant(
      (run) => run.peakRss,
      (values) => Math.max(...values),
    ),
    postgresCpuMsPerCredit: byVariant((run) => run.postgresCpuMsPerCredit),
    redisCpuMsPerCredit: byVariant((run) => run.redisCpuMsPerCredit),
    batchSize: config.workerBatchSize,
    batchWaitMs: config.workerBatchWaitMs,
    ratioTo: { unbatched: creditsPerSecond.real / creditsPerSecond.unbatched, plain: creditsPerSecond.real / creditsPerSecond.plain },
  };
}
