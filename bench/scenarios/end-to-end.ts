import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkBatchCredited, lastLedgerId, seedOrders, type BenchDatabase } from '../lib/bench-database.js';
import { Redis } from 'ioredis';
import { QUEUES } from '@ledger/shared';
import { freePort, runScript, type RunningProcess } from '@ledger/testkit';
import { Queue } from 'bullmq';
import { deleteKeysWithPrefix, sampleRedisMemory } from '../lib/bench-redis.js';
import type { FixedRateOptions, FixedRateRecord } from '../lib/fixed-rate-sender.js';
import { readServiceCpu, serviceCpuUsed } from '../lib/service-cpu.js';
import { percentile } from '../lib/stats.js';
import { benchOrder } from '../lib/stripe-events.js';
import { startOrderWorker, startReceiver, type RunContext } from '../lib/system-processes.js';

/** Latency percentiles in milliseconds. */
export interface Latency {
  p50: number;
  p99: number;
  max: number;
}

/** CPU time per measured event, and the share of one core it adds up to. */
export interface CpuShare {
  msPerEvent: number;
  coreShare: number;
}

export interface EndToEndResult {
  rate: number;
  seconds: number;
  /** Events sent in the measured window (after the warm-up). */
  measured: number;
  /** Measured events per second actually sent. */
  achievedRate: number;
  /** Credits per second the system committed over the whole run: below `rate`, a backlog grew. */
  creditsPerSecond: number;
  /** Worst delay between an event's due time and its send: the generator's own lag. */
  maxSendLagMs: number;
  non2xx: number;
  /** Measured events never credited within the drain timeout. */
  uncredited: number;
  /** Due time → the credit is visible to a reader (the bench polls every `pollMs`): the target. */
  creditVisible: Latency;
  /**
   * Due time → `ledger_entries.created_at`: Prisma fills it in the worker when it builds the insert,
   * mid-transaction (ms precision), so this is a lower bound of the credit's commit.
   */
  ledgerInsert: Latency;
  /** Due time → the receiver's 200. */
  webhookAnswer: Latency;
  pollMs: number;
  /** CPU time per measured event and share of one core from the first measured send to the last credit, of each process. */
  receiverCpu: CpuShare;
  workerCpu: CpuShare;
  /** The same for Redis (its own counter: other clients included) and the worker's PostgreSQL backends. */
  redisCpu: CpuShare;
  postgresCpu: CpuShare;
  /** RSS of the receiver and the worker once ready, before any load, in bytes. */
  receiverReadyRss: number;
  workerReadyRss: number;
  /** Peak RSS (VmHWM) of the receiver and the worker under this load, in bytes. */
  receiverPeakRss: number;
  workerPeakRss: number;
  /** Redis memory the run added, at its peak and at its end, and the completed jobs Redis still keeps then. */
  redisPeakBytes: number;
  redisEndBytes: number;
  completedJobsKept: number;
}

/** How long a missing ledger id holds the watermark back before it counts as a rolled-back insert. */
const GAP_PATIENCE_MS = 2_000;

/**
 * Watches new ledger entries and notes, per reference (PaymentIntent id), when the entry was first
 * visible and its `created_at`. A row seen by a query committed before that query began, so
 * "visible" over-states the commit time by at most one poll interval plus one query.
 *
 * Ids are taken at insert and committed later, out of order, so each poll reads from a watermark
 * below which every id has been seen: few rows per poll, none missed. An id that stays missing
 * (a rolled-back insert burns one) is passed over after {@link GAP_PATIENCE_MS}.
 */
function watchCredits(db: BenchDatabase, afterId: number, pollMs: number) {
  const visibleAt = new Map<string, number>();
  const insertedAt = new Map<string, number>();
  const seenAbove = new Set<number>();
  let watermark = afterId;
  let gapSince: number | undefined;
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const askedAt = Date.now();
      const { rows } = await db.pool.query<{ id: string; reference: string; created_ms: string }>(
        `SELECT id, reference, extract(epoch FROM created_at) * 1000 AS created_ms
         FROM ledger_entries WHERE id > $1 ORDER BY id`,
        [watermark],
      );
      for (const row of rows) {
        seenAbove.add(Number(row.id));
        if (!visibleAt.has(row.reference)) {
          visibleAt.set(row.reference, askedAt);
          insertedAt.set(row.reference, Number(row.created_ms));
        }
      }
      while (seenAbove.delete(watermark + 1)) watermark += 1;
      if (seenAbove.size === 0) gapSince = undefined;
      else if (gapSince === undefined) gapSince = askedAt;
      else if (askedAt - gapSince > GAP_PATIENCE_MS) {
        watermark += 1;
        gapSince = undefined;
      }
      await sleep(pollMs);
    }
  })();
  return {
    visibleAt,
    insertedAt,
    /** Stops polling; an entry a passed-over id held after all is counted as seen now (late, never early). */
    async stop() {
      stopped = true;
      await done;
      const stoppedAt = Date.now();
      const { rows } = await db.pool.query<{ reference: string; created_ms: string }>(
        'SELECT reference, extract(epoch FROM created_at) * 1000 AS created_ms FROM ledger_entries WHERE id > $1',
        [afterId],
      );
      for (const row of rows) {
        if (visibleAt.has(row.reference)) continue;
        visibleAt.set(row.reference, stoppedAt);
        insertedAt.set(row.reference, Number(row.created_ms));
      }
    },
  };
}

/** Completed event jobs Redis keeps under `prefix` (bounded by the jobs' removeOnComplete). */
async function countCompleted(redisUrl: string, prefix: string): Promise<number> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  const queue = new Queue(QUEUES.stripeEvents, { connection, prefix });
  try {
    return (await queue.getJobCounts('completed')).completed ?? 0;
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

/** Credits per second between the first and the last credit seen. */
function creditThroughput(visibleAt: Map<string, number>): number {
  const times = [...visibleAt.values()];
  const first = times.reduce((min, value) => Math.min(min, value), Infinity);
  const last = times.reduce((max, value) => Math.max(max, value), -Infinity);
  return times.length > 1 ? (times.length - 1) / ((last - first) / 1000) : NaN;
}

function latencyOf(values: number[]): Latency {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: values.reduce((max, value) => Math.max(max, value), -Infinity) };
}

/**
 * Benchmarks 3 and 4: webhooks at a fixed rate through a fresh receiver and a fresh worker, each
 * event for its own seeded order; latency from each event's due time to its credit, and the peak
 * RSS of both processes under that load. The first `e2eWarmupSeconds` of events are not measured.
 */
export async function runEndToEndBenchmark(
  context: RunContext,
  db: BenchDatabase,
  runPrefix: string,
  rate: number,
): Promise<EndToEndResult> {
  const { config } = context;
  const batch = `e2e${rate}`;
  const prefix = `${runPrefix}-${batch}`;
  const warmup = Math.round(rate * config.e2eWarmupSeconds);
  const total = warmup + Math.round(rate * config.e2eSeconds);
  await seedOrders(db.pool, batch, total);
  const port = await freePort();
  let receiver: RunningProcess | undefined;
  let worker: RunningProcess | undefined;
  try {
    receiver = await startReceiver(context, `receiver-${batch}`, { port, prefix });
    worker = await startOrderWorker(context, `worker-${batch}`, prefix);
    const receiverReadyRss = receiver.memory().rss;
    const workerReadyRss = worker.memory().rss;
    const redisMemory = sampleRedisMemory(config.redisUrl);
    const watcher = watchCredits(db, await lastLedgerId(db.pool), config.e2ePollMs);

    const outFile = path.join(context.logDir, `${batch}-sends.json`);
    const sender: FixedRateOptions = {
      url: `http://127.0.0.1:${port}`,
      batch,
      rate,
      seconds: config.e2eWarmupSeconds + config.e2eSeconds,
      sockets: 256,
      warmupEvents: warmup,
      outFile,
    };
    // CPU is counted from the first measured send: the warm-up pays for JIT and cold connections.
    const processes = { receiver, worker };
    const database = { pool: db.pool, name: db.name };
    const cpuNow = async () => ({
      receiver: processes.receiver.cpuMs(),
      worker: processes.worker.cpuMs(),
      at: Date.now(),
      services: await readServiceCpu(config.redisUrl, database),
    });
    let cpuBeforeReading = cpuNow();
    const output = await runScript('bench/lib/fixed-rate-sender.ts', [JSON.stringify(sender)], {
      onLine: (line) => {
        if (line === 'measuring') cpuBeforeReading = cpuNow();
      },
    });
    const cpuBefore = await cpuBeforeReading;
    const summary = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as { maxSendLagMs: number };

    const deadline = Date.now() + config.e2eDrainTimeoutSeconds * 1000;
    while (watcher.visibleAt.size < total && Date.now() < deadline) await sleep(50);
    await watcher.stop();
    const elapsedMs = Date.now() - cpuBefore.at;
    const cpuOf = (usedMs: number) => ({ msPerEvent: usedMs / (total - warmup), coreShare: usedMs / elapsedMs });
    const receiverCpu = cpuOf(receiver.cpuMs() - cpuBefore.receiver);
    const workerCpu = cpuOf(worker.cpuMs() - cpuBefore.worker);
    const services = serviceCpuUsed(cpuBefore.services, await readServiceCpu(config.redisUrl, database));
    const receiverPeakRss = receiver.memory().peakRss;
    const workerPeakRss = worker.memory().peakRss;
    const { peakBytes: redisPeakBytes, endBytes: redisEndBytes } = await redisMemory.stop();
    const completedJobsKept = await countCompleted(config.redisUrl, prefix);

    const sends = JSON.parse(readFileSync(outFile, 'utf8')) as FixedRateRecord;
    const visible: number[] = [];
    const inserted: number[] = [];
    const answered: number[] = [];
    let uncredited = 0;
    let non2xx = 0;
    for (let index = warmup; index < total; index += 1) {
      const dueAt = sends.dueAt[index]!;
      const reference = benchOrder(batch, index).paymentIntentId;
      const visibleAt = watcher.visibleAt.get(reference);
      if (visibleAt === undefined) uncredited += 1;
      else visible.push(visibleAt - dueAt);
      const insertedAt = watcher.insertedAt.get(reference);
      if (insertedAt !== undefined) inserted.push(insertedAt - dueAt);
      answered.push(sends.answeredAt[index]! - dueAt);
      const status = sends.status[index]!;
      if (status < 200 || status >= 300) non2xx += 1;
    }
    if (uncredited === 0) {
      const problem = await checkBatchCredited(db.pool, batch, total);
      if (problem) throw new Error(`end-to-end batch: ${problem}`);
    }
    const measuredSends = sends.sentAt.slice(warmup);
    const sendSpan = (measuredSends.at(-1)! - measuredSends[0]!) / 1000;
    return {
      rate,
      seconds: config.e2eSeconds,
      creditsPerSecond: creditThroughput(watcher.visibleAt),
      measured: total - warmup,
      achievedRate: (measuredSends.length - 1) / sendSpan,
      maxSendLagMs: summary.maxSendLagMs,
      non2xx,
      uncredited,
      // A credit that never came counts as infinitely late: a p99 over missing credits would flatter.
      creditVisible: latencyOf([...visible, ...new Array<number>(uncredited).fill(Infinity)]),
      ledgerInsert: latencyOf(inserted),
      webhookAnswer: latencyOf(answered),
      pollMs: config.e2ePollMs,
      receiverCpu,
      workerCpu,
      redisCpu: cpuOf(services.redisMs),
      postgresCpu: cpuOf(services.postgresMs),
      receiverReadyRss,
      workerReadyRss,
      receiverPeakRss,
      workerPeakRss,
      redisPeakBytes,
      redisEndBytes,
      completedJobsKept,
    };
  } finally {
    await Promise.allSettled([receiver?.stop(), worker?.stop()]);
    await deleteKeysWithPrefix(config.redisUrl, `${prefix}:`);
  }
}
