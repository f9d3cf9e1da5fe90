import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, type RunningProcess } from '@ledger/testkit';
import { Redis } from 'ioredis';
import type { BenchDatabase } from '../lib/bench-database.js';
import { deleteKeysWithPrefix } from '../lib/bench-redis.js';
import { startOrderWorker, startReceiver, type RunContext } from '../lib/system-processes.js';
import { creditThroughput, drive, latencyOf, non2xxOf, windowLatency, type DriveRecord, type Latency } from './end-to-end.js';

/** One rate of the latency curve, measured on warm processes. */
export interface CurvePoint {
  rate: number;
  creditVisible: Latency;
  webhookAnswer: Latency;
  /** Credits per second over the measured window: below the rate, a backlog grew. */
  creditsPerSecond: number;
  non2xx: number;
  uncredited: number;
  /** CPU ms per credited event of the receiver, the worker, Redis and PostgreSQL, and their sum. */
  cpuMsPerEvent: { receiver: number; worker: number; redis: number; postgres: number; total: number };
  /** p99 < 100 ms, every answer 2xx, every event credited, credits kept up with the rate. */
  sustained: boolean;
}

export interface LatencyCurveResult {
  seconds: number;
  points: CurvePoint[];
  /** The highest rate the search found sustained (p99 < 100 ms); NaN when none was. */
  highestSustainedRate: number;
}

/** One 10 s window of the soak. */
export interface SoakWindow {
  fromSeconds: number;
  creditVisible: Latency;
  receiverRss: number;
  workerRss: number;
  redisUsedMemory: number;
}

export interface SoakResult {
  rate: number;
  seconds: number;
  windows: SoakWindow[];
  worstWindowP99: number;
  /** Last window minus first: RSS of each process and Redis memory, bytes. */
  growth: { receiverRss: number; workerRss: number; redisUsedMemory: number };
  non2xx: number;
  uncredited: number;
}

const sustainedRun = (point: Omit<CurvePoint, 'sustained'>) =>
  point.creditVisible.p99 < 100 && point.non2xx === 0 && point.uncredited === 0 && point.creditsPerSecond >= 0.95 * point.rate;

/** A fresh receiver and worker on their own prefix, stopped (and their keys deleted) after `use`. */
async function withSystem<T>(
  context: RunContext,
  prefix: string,
  name: string,
  use: (system: { receiver: RunningProcess; worker: RunningProcess; port: number }) => Promise<T>,
): Promise<T> {
  const port = await freePort();
  let receiver: RunningProcess | undefined;
  let worker: RunningProcess | undefined;
  try {
    [receiver, worker] = await Promise.all([
      startReceiver(context, `receiver-${name}`, { port, prefix }),
      startOrderWorker(context, `worker-${name}`, prefix),
    ]);
    return await use({ receiver, worker, port });
  } finally {
    await Promise.allSettled([receiver?.stop(), worker?.stop()]);
    await deleteKeysWithPrefix(context.config.redisUrl, `${prefix}:`);
  }
}

/**
 * The latency curve a user sizes from: one warm receiver and worker, then `curveRates` (100, 300,
 * 1,000/s) and a search for the highest rate sustained with a steady p99 < 100 ms (steps of ×1.25
 * up from the last sustained rate, or down when 1,000/s is not). Each step: 1 s unmeasured, then
 * `curveSeconds` measured; the backlog of one step is drained before the next begins.
 */
export async function runLatencyCurve(context: RunContext, db: BenchDatabase, runPrefix: string): Promise<LatencyCurveResult> {
  const { config } = context;
  const prefix = `${runPrefix}-curve`;
  return withSystem(context, prefix, 'curve', async (system) => {
    const points: CurvePoint[] = [];
    let step = 0;
    const measure = async (rate: number): Promise<CurvePoint> => {
      const warmup = rate;
      const total = warmup + Math.round(rate * config.curveSeconds);
      const run = await drive(context, db, system, { batch: `curve${step++}r${rate}`, rate, total, warmup, port: system.port });
      const steady = windowLatency(run, warmup, total);
      const measured = total - warmup;
      const perEvent = (ms: number) => ms / measured;
      const cpu = {
        receiver: perEvent(run.cpu.receiver),
        worker: perEvent(run.cpu.worker),
        redis: perEvent(run.cpu.redis),
        postgres: perEvent(run.cpu.postgres),
      };
      const point = {
        rate,
        creditVisible: steady.creditVisible,
        webhookAnswer: steady.webhookAnswer,
        creditsPerSecond: creditThroughput(run.visibleAt.slice(warmup)),
        non2xx: non2xxOf(run),
        uncredited: run.visibleAt.filter(Number.isNaN).length,
        cpuMsPerEvent: { ...cpu, total: cpu.receiver + cpu.worker + cpu.redis + cpu.postgres },
      };
      const result = { ...point, sustained: sustainedRun(point) };
      points.push(result);
      return result;
    };
    // One unmeasured second first: the processes were just started (the cold start is benchmark 3's).
    await drive(context, db, system, { batch: 'curvewarm', rate: 500, total: 500, warmup: 0, port: system.port });
    for (const rate of config.curveRates) await measure(rate);
    const sustained = points.filter((point) => point.sustained).map((point) => point.rate);
    let highest = sustained.length > 0 ? Math.max(...sustained) : NaN;
    if (Number.isFinite(highest)) {
      // Up from the highest sustained rate until a step is not.
      for (let rate = Math.round(highest * 1.25); rate <= config.curveMaxRate; rate = Math.round(rate * 1.25)) {
        if (!(await measure(rate)).sustained) break;
        highest = rate;
      }
    } else {
      // Down from the lowest rate measured until one is sustained (10 events/s at the least).
      for (let rate = Math.round(Math.min(...config.curveRates) * 0.5); rate >= 10; rate = Math.round(rate * 0.5)) {
        if ((await measure(rate)).sustained) {
          highest = rate;
          break;
        }
      }
    }
    return { seconds: config.curveSeconds, points: points.sort((a, b) => a.rate - b.rate), highestSustainedRate: highest };
  });
}

async function redisUsedMemory(redisUrl: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  try {
    return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1] ?? NaN);
  } finally {
    redis.disconnect();
  }
}

/**
 * The soak (`--soak`): `e2eRate` for `soakSeconds` through a fresh receiver and worker; per 10 s of
 * due time the credit p99, and at the end of each 10 s the RSS of both processes and Redis's
 * used_memory: the tail must not come back and memory must stay flat.
 */
export async function runSoak(context: RunContext, db: BenchDatabase, runPrefix: string): Promise<SoakResult> {
  const { config } = context;
  const rate = config.e2eRate;
  const prefix = `${runPrefix}-soak`;
  return withSystem(context, prefix, 'soak', async (system) => {
    const samples: { at: number; receiverRss: number; workerRss: number; redisUsedMemory: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push({
          at: Date.now(),
          receiverRss: system.receiver.memory().rss,
          workerRss: system.worker.memory().rss,
          redisUsedMemory: await redisUsedMemory(config.redisUrl),
        });
        await sleep(1_000);
      }
    })();
    const total = Math.round(rate * config.soakSeconds);
    let run: DriveRecord;
    try {
      run = await drive(context, db, system, { batch: `soak${rate}`, rate, total, warmup: 0, port: system.port });
    } finally {
      sampling = false;
      await sampler;
    }
    const first = run.dueAt[0] ?? 0;
    const windows: SoakWindow[] = [];
    for (let from = 0; from < config.soakSeconds; from += 10) {
      const start = Math.round(from * rate);
      const end = Math.min(total, Math.round((from + 10) * rate));
      // The last sample taken before the window's end: memory once its 10 s of traffic had come.
      const until = first + (from + 10) * 1000;
      const sample = samples.filter((entry) => entry.at <= until).at(-1) ?? samples[0];
      windows.push({
        fromSeconds: from,
        creditVisible: windowLatency(run, start, end).creditVisible,
        receiverRss: sample?.receiverRss ?? NaN,
        workerRss: sample?.workerRss ?? NaN,
        redisUsedMemory: sample?.redisUsedMemory ?? NaN,
      });
    }
    const [head, tail] = [windows[0], windows.at(-1)];
    return {
      rate,
      seconds: config.soakSeconds,
      windows,
      worstWindowP99: latencyOf(windows.map((window) => window.creditVisible.p99)).max,
      growth: {
        receiverRss: (tail?.receiverRss ?? NaN) - (head?.receiverRss ?? NaN),
        workerRss: (tail?.workerRss ?? NaN) - (head?.workerRss ?? NaN),
        redisUsedMemory: (tail?.redisUsedMemory ?? NaN) - (head?.redisUsedMemory ?? NaN),
      },
      non2xx: non2xxOf(run),
      uncredited: run.visibleAt.filter(Number.isNaN).length,
    };
  });
}
