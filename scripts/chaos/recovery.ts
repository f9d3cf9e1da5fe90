/**
 * Recovery after the load: wait for the system to go quiet, reconcile once (what Redis lost, what was
 * never delivered), replay the event jobs the kills failed, as an operator would.
 */
import { QUEUES } from '@ledger/shared';
import { Queue } from 'bullmq';
import type { ReconcileReport } from '../../apps/order-worker/src/operations/reconcile.js';
import { sleep, startChild } from '@ledger/testkit';
import type { RunContext } from './context.js';
import {
  getJson,
  monitorConnection,
  withPrisma,
  type EmulatorStats,
  type RunDatabase,
  type RunRedis,
  type RunningSystem,
} from './system.js';
import { verifyRun } from './verify.js';
import type { OrderRecord } from './workload.js';

/** A failed job left in a queue at the end, and why. */
export interface FailedJob {
  queue: string;
  id: string;
  name: string;
  attemptsMade: number;
  reason: string;
  /** Explained by the run's own violence (a job whose worker was killed under it twice). */
  explained: boolean;
}

/** The failed jobs found after the load, and what replaying the stalled event jobs left. */
export interface FailedJobsOutcome {
  failedJobs: FailedJob[];
  unexplainedFailedJobs: number;
  replayed: number;
  lostBeforeReplay: number;
}

/** Runs a command-line tool of the worker app to its end; returns its output or throws with it. */
async function runCli(name: string, args: string[], env: Record<string, string>, logDir: string): Promise<string> {
  const app = startChild({ name, args: ['--import', 'tsx', ...args], env, logDir });
  const code = await app.exited;
  const output = app.tail.join('\n');
  if (code !== 0) throw new Error(`${name} exited ${code}:\n${output}`);
  return output;
}

/** Queues the run watches to the end, on a connection of its own. */
function monitorQueues(ctx: RunContext, redis: RunRedis): Queue[] {
  const connection = monitorConnection(redis);
  const queues = [QUEUES.stripeEvents, QUEUES.paymentSync].map((name) => new Queue(name, { connection, prefix: redis.prefix }));
  ctx.cleanups.push(async () => {
    await Promise.allSettled(queues.map((queue) => queue.close()));
    connection.disconnect();
  });
  return queues;
}

/** Waits until the emulator has nothing left to deliver and the queues nothing left to run. */
async function waitForQuiet(ctx: RunContext, system: RunningSystem, queues: Queue[], what: string): Promise<void> {
  const timeoutMs = ctx.options.quiescenceTimeoutMs ?? 180_000;
  const deadline = Date.now() + timeoutMs;
  let calm = 0;
  let state = '';
  for (;;) {
    ctx.signal?.throwIfAborted();
    const stats = await getJson<EmulatorStats>(`${system.emulatorUrl}/_emulator/stats`);
    const counts = await Promise.all(
      queues.map((queue) => queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')),
    );
    const pendingJobs = counts.reduce((sum, count) => sum + Object.values(count).reduce((a, b) => a + b, 0), 0);
    const pendingDeliveries = stats.deliveries.pending + stats.deliveries.inFlight;
    state = `deliveries pending ${pendingDeliveries}, jobs pending ${JSON.stringify(counts)}`;
    calm = pendingDeliveries === 0 && pendingJobs === 0 ? calm + 1 : 0;
    if (calm >= 3) return;
    if (Date.now() > deadline) throw new Error(`the system did not go quiet (${what}) within ${timeoutMs} ms: ${state}`);
    await sleep(300);
  }
}

/**
 * `npm run reconcile -- --json`, as an operator would run it; its report is the one JSON line on
 * stdout (warnings are JSON log lines too, told apart by their fields).
 */
async function reconcileWithCli(env: Record<string, string>, logDir: string): Promise<ReconcileReport> {
  const output = await runCli('reconcile', ['apps/order-worker/src/cli/reconcile.ts', '--json'], env, logDir);
  for (const line of output.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    const parsed = JSON.parse(line) as Partial<ReconcileReport>;
    if (typeof parsed.eventsEnqueued === 'number' && parsed.payments) return parsed as ReconcileReport;
  }
  throw new Error(`reconcile --json printed no report:\n${output}`);
}

async function listFailedJobs(queues: Queue[]): Promise<FailedJob[]> {
  const perQueue = await Promise.all(
    queues.map(async (queue) =>
      (await queue.getFailed(0, -1)).map((job) => {
        const reason = job.failedReason ?? '';
        return {
          queue: queue.name,
          id: job.id ?? '?',
          name: job.name,
          attemptsMade: job.attemptsMade,
          reason,
          explained: /stalled more than allowable limit/i.test(reason),
        };
      }),
    ),
  );
  return perQueue.flat();
}

/**
 * Failed jobs left after the load. BullMQ fails a job whose lock lapsed more than `maxStalledCount`
 * times (10 in worker.ts): its workers were killed under it again and again, which the run can do.
 * Event jobs carry money facts, so do what an operator would: replay them. Stalled sync jobs were
 * only "ask Stripe" hints; the events and reconciliation carry the same facts.
 */
async function replayStalledEvents(
  ctx: RunContext,
  system: RunningSystem,
  queues: Queue[],
  database: RunDatabase,
  records: OrderRecord[],
  cliEnv: Record<string, string>,
): Promise<FailedJobsOutcome> {
  const failedJobs = await listFailedJobs(queues);
  let unexplainedFailedJobs = failedJobs.filter((job) => !job.explained).length;
  const stalledEvents = new Set(failedJobs.filter((job) => job.explained && job.queue === QUEUES.stripeEvents).map((job) => job.id));
  let lostBeforeReplay = 0;
  if (stalledEvents.size > 0) {
    lostBeforeReplay = await withPrisma(database.url, async (prisma) => (await verifyRun(prisma, records)).lost);
    ctx.log(
      `${stalledEvents.size} event job(s) failed because their workers were killed under them again and again (${lostBeforeReplay} ledger entries missing meanwhile); npm run replay -- --failed`,
    );
    const replayOutput = await runCli('replay', ['apps/order-worker/src/cli/replay.ts', '--failed'], cliEnv, ctx.logDir);
    ctx.log(
      replayOutput
        .split('\n')
        .filter((line) => !line.startsWith('{'))
        .slice(-1)
        .join(''),
    );
    await waitForQuiet(ctx, system, queues, 'after replay');
    // An event job still failed after its replay is not explained by the kills any more.
    unexplainedFailedJobs += (await listFailedJobs(queues)).filter(
      (job) => job.queue === QUEUES.stripeEvents && stalledEvents.has(job.id),
    ).length;
  }
  for (const job of failedJobs) ctx.log(`failed job ${job.queue}/${job.id} (${job.name}, ${job.attemptsMade} attempts): ${job.reason}`);
  return { failedJobs, unexplainedFailedJobs, replayed: stalledEvents.size, lostBeforeReplay };
}

/**
 * After the load: waits for the system to go quiet, runs one reconciliation pass (`npm run reconcile`,
 * which recovers what Redis lost and what the emulator never delivered), waits again, then replays
 * the event jobs the kills failed.
 */
export async function recover(
  ctx: RunContext,
  system: RunningSystem,
  redis: RunRedis,
  database: RunDatabase,
  records: OrderRecord[],
): Promise<{ reconcile: ReconcileReport; failed: FailedJobsOutcome }> {
  const queues = monitorQueues(ctx, redis);
  await waitForQuiet(ctx, system, queues, 'after the load');
  ctx.log(`quiet after ${Math.round((Date.now() - ctx.started) / 1000)} s; reconciling once`);

  const cliEnv = { ...system.env, LOG_LEVEL: 'warn', RECONCILE_STALE_AFTER_SECONDS: '0', STRIPE_MAX_RPS: '100' };
  const reconcile = await reconcileWithCli(cliEnv, ctx.logDir);
  ctx.log(
    `reconcile: ${reconcile.eventsListed} Stripe events listed, ${reconcile.eventsEnqueued} the inbox lacked queued now (${reconcile.eventsInFlight} already queued), ${reconcile.payments.uncredited.length} payments not credited yet`,
  );
  await waitForQuiet(ctx, system, queues, 'after reconciliation');
  const failed = await replayStalledEvents(ctx, system, queues, database, records, cliEnv);
  return { reconcile, failed };
}
