/** What a chaos run reports: its figures and the one summary line printed. */
import type { FailedJob } from './recovery.js';
import type { SpendingReport } from './verify-spending.js';
import type { VerifyReport } from './verify.js';

/** The figures of a run. `ok` is the verdict: nothing lost, nothing doubled, every balance right. */
export interface ChaosSummary {
  ok: boolean;
  /** One redis-server, or a Redis Cluster. */
  redis: 'single' | 'cluster';
  seed: number;
  orders: number;
  accounts: number;
  durationMs: number;
  /** Events the emulator created, and how many of them the worker applied (inbox rows). */
  events: number;
  handledEvents: number;
  deliveries: number;
  /** Events the emulator sent more than once on purpose. */
  duplicates: number;
  /** Events the emulator never sent on purpose (reconciliation must recover them). */
  dropped: number;
  /** Delivery attempts the receiver did not answer 2xx (Redis down: 503) and the emulator retried. */
  rejectedDeliveries: number;
  /** Worker processes SIGKILLed. */
  kills: number;
  workerRestarts: number;
  /** Workers restarted while Redis or PostgreSQL was down, which refused to start (and were started again). */
  refusedStarts: number;
  redisRestarts: number;
  /** Times Redis lost everything it held (FLUSHALL during the load), and the event jobs it held then. */
  redisFlushes: number;
  eventJobsFlushed: number;
  /** Cluster masters SIGKILLed and replaced by their replica, and how long each slot range had no master. */
  redisFailovers: number;
  failoverMs: number[];
  /** Refunds that failed or were canceled after their debit. */
  refundReversals: number;
  /** Another integration's payments during the run, and their events the inbox recorded as not ours. */
  foreignPayments: number;
  foreignEventsNotOurs: number;
  /** Times every PostgreSQL connection of the run's database was terminated, and how many went. */
  pgKills: number;
  pgConnectionsKilled: number;
  /** Processes of the system that died without being killed (a crash is a bug). */
  crashes: string[];
  stalledJobs: number;
  retriedJobs: number;
  clientRetries: number;
  /** Events the final reconciliation pass queued because the inbox lacked them (dropped deliveries, Redis losses). */
  reconcileQueued: number;
  failedJobs: FailedJob[];
  unexplainedFailedJobs: number;
  /** Event jobs failed by stalling twice, sent back through `npm run replay -- --failed`. */
  replayed: number;
  /** Ledger entries missing before that replay (what the stalled-twice jobs held back). */
  lostBeforeReplay: number;
  lost: number;
  doubled: number;
  balancesOk: boolean;
  /** Accounts whose debits and captures went beyond their money (verify-spending.ts). */
  overspent: number;
  verify: VerifyReport;
  /** Spending during the load against the ledger: debits, holds, captures, and what the client was told. */
  spending: SpendingReport;
  /** Where the processes' logs are (kept when the run fails). */
  logDir: string;
  database: string;
  /** The one-line summary. */
  line: string;
}

export function formatSummary(s: Omit<ChaosSummary, 'line'>): string {
  const v = s.verify;
  const sp = s.spending;
  const spendingProblems = sp.lost + sp.doubled + sp.wrong + sp.activeHolds + sp.unexpectedAnswers;
  const cluster = s.redis === 'cluster';
  return [
    `chaos ${s.ok ? 'OK' : 'FAILED'}: ${s.orders} orders / ${s.accounts} accounts`,
    `events ${s.events} (applied ${s.handledEvents})`,
    `deliveries ${s.deliveries} (rejected ${s.rejectedDeliveries})`,
    `duplicates ${s.duplicates}`,
    `dropped ${s.dropped}`,
    `kills ${s.kills}`,
    cluster
      ? `restarts ${s.workerRestarts} (workers)`
      : `restarts ${s.workerRestarts + s.redisRestarts} (workers ${s.workerRestarts}, redis ${s.redisRestarts})`,
    `refused starts ${s.refusedStarts}`,
    cluster
      ? `redis cluster failovers ${s.redisFailovers} (${s.failoverMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ') || 'none'} without a master)`
      : `redis flushes ${s.redisFlushes} (${s.eventJobsFlushed} event jobs lost)`,
    `refund reversals ${s.refundReversals}`,
    `foreign payments ${s.foreignPayments} (events not ours ${s.foreignEventsNotOurs})`,
    `pg kills ${s.pgKills} (${s.pgConnectionsKilled} connections)`,
    `stalled ${s.stalledJobs}`,
    `job retries ${s.retriedJobs}`,
    `client retries ${s.clientRetries}`,
    `reconcile re-queued ${s.reconcileQueued}`,
    `failed jobs ${s.failedJobs.length} (unexplained ${s.unexplainedFailedJobs}, replayed ${s.replayed}, lost before replay ${s.lostBeforeReplay})`,
    `crashes ${s.crashes.length}`,
    `lost ${s.lost}`,
    `doubled ${s.doubled}`,
    `balances ${s.balancesOk ? 'ok' : `${v.balanceMismatches} wrong, audit ${v.audit.problems.length} problem(s)`}`,
    `statuses ${v.wrongStatuses === 0 ? 'ok' : `${v.wrongStatuses} wrong`}`,
    `spent ${sp.debits} debits (${sp.replayedDebits} replayed), ${sp.captures} captures of ${sp.holds} holds (${sp.replayedHolds} replayed, ${sp.released} released, ${sp.swept} expired)`,
    `spending refused ${sp.refused}, unresolved ${sp.unresolved}, retries ${sp.retries} (${sp.lostAnswers} answers lost)`,
    `spending ${spendingProblems === 0 ? 'ok' : `lost ${sp.lost}, doubled ${sp.doubled}, wrong ${sp.wrong}, active holds ${sp.activeHolds}, unexpected answers ${sp.unexpectedAnswers}`}`,
    `overspent ${s.overspent}`,
    `${Math.round(s.durationMs / 1000)} s, seed ${s.seed}`,
  ].join(', ');
}
