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

/** One 100 ms slot of a run, by the events' due time: how many were due, answered 2xx and credited, and how late. */
export interface Slot {
  /** Start of the slot, ms after the first event was due. */
  fromMs: number;
  due: number;
  answered: number;
  credited: number;
  answer: Latency;
  credit: Latency;
}

/** The run once it is warm: events due after the warm-up. */
export interface SteadyLatency {
  creditVisible: Latency;
  ledgerInsert: Latency;
  webhookAnswer: Latency;
}

export interface EndToEndResult {
  rate: number;
  /** Seconds measured after the warm-up (the steady window). */
  seconds: number;
  /** Seconds from the first request that make the cold window (`creditVisible`, `webhookAnswer`, `ledgerInsert`). */
  coldSeconds: number;
  /** Events sent in the measured window (after the warm-up). */
  measured: number;
  /** Measured events per second actually sent. */
  achievedRate: number;
  /** Credits per second the system committed over the whole run: below `rate`, a backlog grew. */
  creditsPerSecond: number;
  /** Worst delay between an event's due time and its send: the generator's own lag. */
  maxSendLagMs: number;
  non2xx: number;
  /** Events (any window) never credited within the drain timeout. */
  uncredited: number;
  /**
   * COLD: due time → the credit is visible to a reader (the bench polls every `pollMs`), over the
   * events due in the first `coldSeconds` after the first request reached the just-ready processes.
   */
  creditVisible: Latency;
  /**
   * Cold, due time → `ledger_entries.created_at`: Prisma fills it in the worker when it builds the
   * insert, mid-transaction (ms precision), so this is a lower bound of the credit's commit.
   */
  ledgerInsert: Latency;
  /** Cold, due time → the receiver's 200. */
  webhookAnswer: Latency;
  /** The same after the warm-up (`e2eWarmupSeconds`), to the end. */
  steady: SteadyLatency;
  /** Every 100 ms of the run. */
  timeline: Slot[];
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
export function creditThroughput(visibleAt: Iterable<number>): number {
  const times = [...visibleAt].filter(Number.isFinite);
  const first = times.reduce((min, value) => Math.min(min, value), Infinity);
  const last = times.reduce((max, value) => Math.max(max, value), -Infinity);
  return times.length > 1 ? (times.length - 1) / ((last - first) / 1000) : NaN;
}

export function latencyOf(values: number[]): Latency {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: values.reduce((max, value) => Math.max(max, value), -Infinity) };
}

/** The processes whose CPU a drive counts. */
export interface SystemProcesses {
  receiver: RunningProcess;
  worker: RunningProcess;
  /** A receiver that joins during the run (scale-out). */
  joining?: RunningProcess | undefined;
}

export interface DriveOptions {
  batch: string;
  rate: number;
  /** Events sent in all. */
  total: number;
  /** Events before the measured window: CPU is counted from the first measured send. */
  warmup: number;
  port: number;
  /** A second receiver's port: the sender sends every other event to it once it answers /readyz. */
  joinPort?: number;
  /** Called when the sender starts (the scale-out case starts its second receiver then). */
  onStart?: () => void;
}

/** Per event, by order index: the sender's record plus when its credit was seen (NaN: never). */
export interface DriveRecord extends FixedRateRecord {
  visibleAt: number[];
  insertedAt: number[];
  maxSendLagMs: number;
  /** CPU ms per process and service from the first measured send to the last credit, and that span. */
  cpu: { receiver: number; worker: number; joining: number; redis: number; postgres: number; elapsedMs: number };
}

/**
 * Sends `total` signed events at `rate` (open loop, lib/fixed-rate-sender.ts) to running processes,
 * one per freshly seeded order of `batch`, watches the ledger for their credits and waits for all
 * of them (or the drain timeout). Every figure of the end-to-end benchmarks is computed from this.
 */
export async function drive(
  context: RunContext,
  db: BenchDatabase,
  processes: SystemProcesses,
  options: DriveOptions,
): Promise<DriveRecord> {
  const { config } = context;
  const { batch, total } = options;
  await seedOrders(db.pool, batch, total);
  const watcher = watchCredits(db, await lastLedgerId(db.pool), config.e2ePollMs);
  const outFile = path.join(context.logDir, `${batch}-sends.json`);
  const sender: FixedRateOptions = {
    url: `http://127.0.0.1:${options.port}`,
    ...(options.joinPort ? { joinUrl: `http://127.0.0.1:${options.joinPort}` } : {}),
    batch,
    rate: options.rate,
    seconds: total / options.rate,
    sockets: 256,
    warmupEvents: options.warmup,
    outFile,
  };
  const database = { pool: db.pool, name: db.name };
  const cpuNow = async () => ({
    receiver: processes.receiver.cpuMs(),
    worker: processes.worker.cpuMs(),
    joining: processes.joining?.cpuMs() ?? 0,
    at: Date.now(),
    services: await readServiceCpu(config.redisUrl, database),
  });
  let cpuBeforeReading = cpuNow();
  const running = runScript('bench/lib/fixed-rate-sender.ts', [JSON.stringify(sender)], {
    onLine: (line) => {
      if (line === 'measuring') cpuBeforeReading = cpuNow();
    },
  });
  options.onStart?.();
  const output = await running;
  const cpuBefore = await cpuBeforeReading;
  const summary = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as { maxSendLagMs: number };
  const deadline = Date.now() + config.e2eDrainTimeoutSeconds * 1000;
  while (watcher.visibleAt.size < total && Date.now() < deadline) await sleep(50);
  await watcher.stop();
  const services = serviceCpuUsed(cpuBefore.services, await readServiceCpu(config.redisUrl, database));
  const cpu = {
    receiver: processes.receiver.cpuMs() - cpuBefore.receiver,
    worker: processes.worker.cpuMs() - cpuBefore.worker,
    joining: (processes.joining?.cpuMs() ?? 0) - cpuBefore.joining,
    redis: services.redisMs,
    postgres: services.postgresMs,
    elapsedMs: Date.now() - cpuBefore.at,
  };
  const sends = JSON.parse(readFileSync(outFile, 'utf8')) as FixedRateRecord;
  const visibleAt: number[] = [];
  const insertedAt: number[] = [];
  for (let index = 0; index < total; index += 1) {
    const reference = benchOrder(batch, index).paymentIntentId;
    visibleAt.push(watcher.visibleAt.get(reference) ?? NaN);
    insertedAt.push(watcher.insertedAt.get(reference) ?? NaN);
  }
  if (!visibleAt.some(Number.isNaN)) {
    const problem = await checkBatchCredited(db.pool, batch, total);
    if (problem) throw new Error(`end-to-end batch ${batch}: ${problem}`);
  }
  return { ...sends, visibleAt, insertedAt, maxSendLagMs: summary.maxSendLagMs, cpu };
}

/** Latencies of the events `from` ≤ index < `to` (and `keep`), from due time; a credit that never came counts as infinitely late. */
export function windowLatency(run: DriveRecord, from: number, to: number, keep: (index: number) => boolean = () => true): SteadyLatency {
  const visible: number[] = [];
  const inserted: number[] = [];
  const answered: number[] = [];
  for (let index = from; index < Math.min(to, run.dueAt.length); index += 1) {
    if (!keep(index)) continue;
    const dueAt = run.dueAt[index]!;
    // A credit that never came counts as infinitely late: a p99 over missing credits would flatter.
    visible.push(Number.isNaN(run.visibleAt[index]!) ? Infinity : run.visibleAt[index]! - dueAt);
    if (!Number.isNaN(run.insertedAt[index]!)) inserted.push(run.insertedAt[index]! - dueAt);
    answered.push(run.answeredAt[index]! - dueAt);
  }
  return { creditVisible: latencyOf(visible), ledgerInsert: latencyOf(inserted), webhookAnswer: latencyOf(answered) };
}

/** The run in 100 ms slots of due time. */
export function timelineOf(run: DriveRecord, slotMs = 100): Slot[] {
  const first = run.dueAt[0] ?? 0;
  const slots: { due: number; answered: number; credited: number; answers: number[]; credits: number[] }[] = [];
  for (const [index, dueAt] of run.dueAt.entries()) {
    const slot = Math.floor((dueAt - first) / slotMs);
    slots[slot] ??= { due: 0, answered: 0, credited: 0, answers: [], credits: [] };
    const entry = slots[slot];
    entry.due += 1;
    const status = run.status[index]!;
    if (status >= 200 && status < 300) entry.answered += 1;
    entry.answers.push(run.answeredAt[index]! - dueAt);
    const visibleAt = run.visibleAt[index]!;
    if (!Number.isNaN(visibleAt)) entry.credited += 1;
    entry.credits.push(Number.isNaN(visibleAt) ? Infinity : visibleAt - dueAt);
  }
  return Array.from(slots, (entry, slot) => ({
    fromMs: slot * slotMs,
    due: entry?.due ?? 0,
    answered: entry?.answered ?? 0,
    credited: entry?.credited ?? 0,
    answer: latencyOf(entry?.answers ?? []),
    credit: latencyOf(entry?.credits ?? []),
  }));
}

/** The slot with the highest credit p99. */
export function worstSlot(timeline: Slot[]): Slot | undefined {
  return timeline.reduce<Slot | undefined>((worst, slot) => (!worst || slot.credit.p99 > worst.credit.p99 ? slot : worst), undefined);
}

export const non2xxOf = (run: DriveRecord, from = 0, to = run.status.length) =>
  run.status.slice(from, to).filter((status) => status < 200 || status >= 300).length;

/**
 * Benchmarks 3 and 4: webhooks at a fixed rate through a fresh receiver and a fresh worker (traffic
 * from their first second of being ready: the cold start is measured, not warmed away), each event
 * for its own seeded order; latency from each event's due time to its credit over the first
 * `e2eColdSeconds` (cold) and after `e2eWarmupSeconds` (steady), per 100 ms, and the peak RSS of
 * both processes under that load.
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
  const total = Math.round(rate * Math.max(config.e2eColdSeconds, config.e2eWarmupSeconds + config.e2eSeconds));
  const port = await freePort();
  let receiver: RunningProcess | undefined;
  let worker: RunningProcess | undefined;
  try {
    [receiver, worker] = await Promise.all([
      startReceiver(context, `receiver-${batch}`, { port, prefix }),
      startOrderWorker(context, `worker-${batch}`, prefix),
    ]);
    const receiverReadyRss = receiver.memory().rss;
    const workerReadyRss = worker.memory().rss;
    const redisMemory = sampleRedisMemory(config.redisUrl);
    const run = await drive(context, db, { receiver, worker }, { batch, rate, total, warmup, port });
    const measured = total - warmup;
    const cpuOf = (usedMs: number) => ({ msPerEvent: usedMs / measured, coreShare: usedMs / run.cpu.elapsedMs });
    const receiverPeakRss = receiver.memory().peakRss;
    const workerPeakRss = worker.memory().peakRss;
    const { peakBytes: redisPeakBytes, endBytes: redisEndBytes } = await redisMemory.stop();
    const completedJobsKept = await countCompleted(config.redisUrl, prefix);
    const cold = windowLatency(run, 0, Math.round(rate * config.e2eColdSeconds));
    const measuredSends = run.sentAt.slice(warmup);
    const sendSpan = (measuredSends.at(-1)! - measuredSends[0]!) / 1000;
    return {
      rate,
      seconds: config.e2eSeconds,
      coldSeconds: config.e2eColdSeconds,
      creditsPerSecond: creditThroughput(run.visibleAt),
      measured,
      achievedRate: (measuredSends.length - 1) / sendSpan,
      maxSendLagMs: run.maxSendLagMs,
      non2xx: non2xxOf(run),
      uncredited: run.visibleAt.filter(Number.isNaN).length,
      ...cold,
      steady: windowLatency(run, warmup, total),
      timeline: timelineOf(run),
      pollMs: config.e2ePollMs,
      receiverCpu: cpuOf(run.cpu.receiver),
      workerCpu: cpuOf(run.cpu.worker),
      redisCpu: cpuOf(run.cpu.redis),
      postgresCpu: cpuOf(run.cpu.postgres),
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
