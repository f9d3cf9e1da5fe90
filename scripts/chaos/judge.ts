/** The verdict of a chaos run: the ledger against what Stripe did, and the run's figures. */
import type { ReconcileReport } from '../../apps/order-worker/src/operations/reconcile.js';
import type { RunContext } from './context.js';
import type { LoadOutcome } from './faults.js';
import type { FailedJobsOutcome } from './recovery.js';
import { formatSummary, type ChaosSummary } from './summary.js';
import { getJson, withPrisma, type EmulatorStats, type RunDatabase, type RunRedis, type RunningSystem } from './system.js';
import { verifyRun } from './verify.js';
import { verifySpending } from './verify-spending.js';

/** Compares the ledger with what Stripe did and gives the verdict. */
export async function judge(
  ctx: RunContext,
  run: {
    database: RunDatabase;
    redis: RunRedis;
    system: RunningSystem;
    load: LoadOutcome;
    reconcile: ReconcileReport;
    failed: FailedJobsOutcome;
  },
): Promise<ChaosSummary> {
  const { database, redis, system, load, failed } = run;
  const stats = await getJson<EmulatorStats>(`${system.emulatorUrl}/_emulator/stats`);
  const { verify, spending, handledEvents } = await withPrisma(database.url, async (prisma) => ({
    verify: await verifyRun(prisma, load.records),
    spending: await verifySpending(prisma, load.spending),
    handledEvents: await prisma.stripeEvent.count(),
  }));
  for (const detail of [...verify.details, ...spending.details]) ctx.log(`  ${detail}`);

  const balancesOk = verify.balanceMismatches === 0 && verify.audit.problems.length === 0;
  const crashes = [
    ...system.workers.crashes,
    ...[system.emulator, system.receiver].filter((app) => app.done).map((app) => `${app.name} exited: ${app.tail.slice(-5).join(' | ')}`),
  ];
  const ok =
    verify.lost === 0 &&
    verify.doubled === 0 &&
    balancesOk &&
    verify.wrongEntries === 0 &&
    verify.wrongStatuses === 0 &&
    verify.extraOrders === 0 &&
    verify.failedInboxEvents === 0 &&
    verify.heldInboxEvents === 0 &&
    verify.foreignEventsMisrecorded === 0 &&
    failed.unexplainedFailedJobs === 0 &&
    crashes.length === 0 &&
    stats.deliveries.exhausted === 0 &&
    spending.overspent === 0 &&
    spending.lost === 0 &&
    spending.doubled === 0 &&
    spending.wrong === 0 &&
    spending.activeHolds === 0 &&
    spending.unexpectedAnswers === 0;
  const summary: Omit<ChaosSummary, 'line'> = {
    ok,
    redis: redis.kind,
    seed: ctx.seed,
    orders: ctx.options.orders,
    accounts: ctx.options.accounts,
    durationMs: Date.now() - ctx.started,
    events: stats.events.created,
    handledEvents,
    deliveries: stats.deliveries.attempted,
    duplicates: stats.events.duplicated,
    dropped: stats.events.dropped,
    rejectedDeliveries: stats.deliveries.failed,
    kills: system.workers.kills,
    workerRestarts: system.workers.restartCount,
    refusedStarts: system.workers.refusedStarts,
    redisRestarts: redis.kind === 'single' ? redis.server.restarts : 0,
    redisFlushes: redis.kind === 'single' ? redis.server.flushes : 0,
    eventJobsFlushed: load.eventJobsFlushed,
    redisFailovers: redis.kind === 'cluster' ? redis.cluster.failovers : 0,
    failoverMs: load.failoverMs,
    refundReversals: load.records.reduce((sum, record) => sum + record.refunds.filter((refund) => refund.reversed).length, 0),
    foreignPayments: load.records.filter((record) => record.foreignPayment).length,
    foreignEventsNotOurs: verify.foreignEventsNotOurs,
    pgKills: load.pgKills,
    pgConnectionsKilled: load.pgConnectionsKilled,
    crashes,
    stalledJobs: system.workers.stalled,
    retriedJobs: system.workers.retried,
    clientRetries: load.clientRetries,
    reconcileQueued: run.reconcile.eventsEnqueued,
    ...failed,
    lost: verify.lost,
    doubled: verify.doubled,
    balancesOk,
    overspent: spending.overspent,
    verify,
    spending,
    logDir: ctx.logDir,
    database: database.name,
  };
  return { ...summary, line: formatSummary(summary) };
}
