import { freePort, type RunningProcess } from '@ledger/testkit';
import type { BenchDatabase } from '../lib/bench-database.js';
import { deleteKeysWithPrefix } from '../lib/bench-redis.js';
import { startOrderWorker, startReceiver, type RunContext } from '../lib/system-processes.js';
import { drive, non2xxOf, windowLatency, type SteadyLatency } from './end-to-end.js';

export interface ScaleOutResult {
  rate: number;
  seconds: number;
  /** Seconds after the first send at which the second receiver was started, and answered /readyz. */
  startedAfterSeconds: number;
  joinedAfterSeconds: number;
  /** Its start-up: from being started to answering ready. */
  startUpMs: number;
  /** Events the joining receiver took in its first second, and their latencies. */
  joinerFirstSecond: SteadyLatency & { events: number };
  /** The first receiver's events over the same second. */
  firstReceiverSameSecond: SteadyLatency & { events: number };
  /** Every event of the run. */
  all: SteadyLatency;
  non2xx: number;
  uncredited: number;
}

/**
 * Scale-out under load: a warm receiver and worker take `e2eRate` events/s; after
 * `scaleOutJoinAfterSeconds` a second receiver is started, and from the moment it answers
 * `/readyz` the sender gives it every other event (as a load balancer adds a ready backend). Its
 * first second is what a deploy or a scale-out costs the tail.
 */
export async function runScaleOutBenchmark(context: RunContext, db: BenchDatabase, runPrefix: string): Promise<ScaleOutResult> {
  const { config } = context;
  const rate = config.e2eRate;
  const prefix = `${runPrefix}-scaleout`;
  const [port, joinPort] = [await freePort(), await freePort()];
  let receiver: RunningProcess | undefined;
  let worker: RunningProcess | undefined;
  let joining: RunningProcess | undefined;
  let joiningStart: Promise<RunningProcess> | undefined;
  try {
    [receiver, worker] = await Promise.all([
      startReceiver(context, 'receiver-scaleout', { port, prefix }),
      startOrderWorker(context, 'worker-scaleout', prefix),
    ]);
    const total = Math.round(rate * config.scaleOutSeconds);
    let startedAt = NaN;
    const processes = { receiver, worker, joining: undefined as RunningProcess | undefined };
    const run = await drive(context, db, processes, {
      batch: `scaleout${rate}`,
      rate,
      total,
      warmup: 0,
      port,
      joinPort,
      onStart: () => {
        setTimeout(() => {
          startedAt = Date.now();
          joiningStart = startReceiver(context, 'receiver-scaleout-joining', { port: joinPort, prefix });
          void joiningStart.then(
            (child) => {
              joining = child;
              processes.joining = child;
            },
            () => undefined,
          );
        }, config.scaleOutJoinAfterSeconds * 1000);
      },
    });
    joining = await joiningStart;
    const first = run.dueAt[0] ?? 0;
    const joinedAt = run.joinedAt ?? NaN;
    const inJoinersFirstSecond = (index: number) => run.dueAt[index]! >= joinedAt && run.dueAt[index]! < joinedAt + 1000;
    const ofTarget = (target: number) => (index: number) => inJoinersFirstSecond(index) && run.target[index] === target;
    const count = (keep: (index: number) => boolean) => run.dueAt.filter((_, index) => keep(index)).length;
    return {
      rate,
      seconds: config.scaleOutSeconds,
      startedAfterSeconds: (startedAt - first) / 1000,
      joinedAfterSeconds: (joinedAt - first) / 1000,
      startUpMs: joinedAt - startedAt,
      joinerFirstSecond: { ...windowLatency(run, 0, total, ofTarget(1)), events: count(ofTarget(1)) },
      firstReceiverSameSecond: { ...windowLatency(run, 0, total, ofTarget(0)), events: count(ofTarget(0)) },
      all: windowLatency(run, 0, total),
      non2xx: non2xxOf(run),
      uncredited: run.visibleAt.filter(Number.isNaN).length,
    };
  } finally {
    joining ??= await joiningStart?.catch(() => undefined);
    await Promise.allSettled([receiver?.stop(), worker?.stop(), joining?.stop()]);
    await deleteKeysWithPrefix(config.redisUrl, `${prefix}:`);
  }
}
