/**
 * The load under fire: customers place and pay orders while workers are SIGKILLed, Redis is crashed
 * and flushed (or its cluster's master failed over) and PostgreSQL's connections are terminated, each
 * at a random moment of the load.
 */
import { randomBytes } from 'node:crypto';
import { QUEUES } from '@ledger/shared';
import { Queue } from 'bullmq';
import { terminateConnections } from './database.js';
import { sleep, waitUntil, type Rng } from '@ledger/testkit';
import type { RunContext } from './context.js';
import { ORDERS_API_KEY, monitorConnection, type RunDatabase, type RunRedis, type RunningSystem } from './system.js';
import { Spenders, type SpendingBook } from './spending.js';
import { Customers, planOrders, type OrderRecord } from './workload.js';

type ChaosAction = {
  at: number;
  kind: 'kill-worker' | 'kill-all-workers' | 'restart-redis' | 'flush-redis' | 'fail-over-redis' | 'kill-postgres';
};

/** Random moments of the load (as a share of orders played) for each act of violence. */
function planActions(rng: Rng, workerKills: number, killAll: number, redis: 'single' | 'cluster'): ChaosAction[] {
  const at = (min: number, max: number) => min + rng.next() * (max - min);
  const actions: ChaosAction[] = [
    ...Array.from({ length: workerKills }, () => ({ at: at(0.05, 0.95), kind: 'kill-worker' as const })),
    ...Array.from({ length: killAll }, () => ({ at: at(0.1, 0.9), kind: 'kill-all-workers' as const })),
    ...(redis === 'single'
      ? [
          { at: at(0.25, 0.75), kind: 'restart-redis' as const },
          { at: at(0.3, 0.8), kind: 'flush-redis' as const },
        ]
      : [{ at: at(0.25, 0.75), kind: 'fail-over-redis' as const }]),
    { at: at(0.15, 0.85), kind: 'kill-postgres' },
  ];
  return actions.sort((a, b) => a.at - b.at);
}

/** What the load and the violence did. */
export interface LoadOutcome {
  records: OrderRecord[];
  clientRetries: number;
  /** What the spending client did during the load and believes happened. */
  spending: SpendingBook;
  pgKills: number;
  pgConnectionsKilled: number;
  eventJobsFlushed: number;
  failoverMs: number[];
}

/** Event jobs Redis holds and no worker has finished (what a flush destroys). */
async function pendingEventJobs(redis: RunRedis): Promise<number> {
  const connection = monitorConnection(redis);
  const queue = new Queue(QUEUES.stripeEvents, { connection, prefix: redis.prefix });
  try {
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized').catch(() => ({}));
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

/** What the faults did: the PostgreSQL kills, the event jobs a flush destroyed, the failovers' lengths. */
type FaultTally = Pick<LoadOutcome, 'pgKills' | 'pgConnectionsKilled' | 'eventJobsFlushed' | 'failoverMs'>;

/**
 * One act of violence: SIGKILL one worker or all of them, crash and restart Redis or flush it, fail
 * over the cluster's master of the queues' slot, or terminate every PostgreSQL connection of the run's
 * database. `progress` is how far the load is (`played/planned`, for the log lines).
 */
async function strike(
  ctx: RunContext,
  system: RunningSystem,
  redis: RunRedis,
  database: RunDatabase,
  action: ChaosAction,
  progress: () => string,
  tally: FaultTally,
): Promise<void> {
  const { options, log } = ctx;
  const { workers } = system;
  const at = progress();
  switch (action.kind) {
    case 'kill-worker':
      log(`[${at}] SIGKILL ${await workers.killOne()}`);
      return;
    case 'kill-all-workers':
      log(`[${at}] SIGKILL all ${await workers.killAll()} workers`);
      return;
    case 'restart-redis': {
      if (redis.kind !== 'single') return;
      const stopSignal = options.redisStopSignal ?? 'SIGKILL';
      log(`[${at}] ${stopSignal} redis-server, restart in 1 s`);
      await redis.server.restart(stopSignal, 1_000);
      log(`[${progress()}] redis-server back`);
      return;
    }
    case 'flush-redis': {
      if (redis.kind !== 'single') return;
      // Workers down for a moment so acknowledged jobs pile up, then Redis forgets them all.
      log(`[${at}] SIGKILL all ${await workers.killAll()} workers before the flush`);
      await sleep(150);
      tally.eventJobsFlushed = await pendingEventJobs(redis);
      await redis.server.flush();
      log(`[${at}] FLUSHALL: Redis lost every job it held (${tally.eventJobsFlushed} event jobs not applied yet)`);
      return;
    }
    case 'fail-over-redis': {
      if (redis.kind !== 'cluster') return;
      // The master of the queues' slot (the prefix's hash tag decides it): every enqueue and
      // every job move goes there. Whatever it had not replicated yet is gone with it.
      log(`[${at}] SIGKILL the Redis master serving ${redis.prefix}`);
      const { port, failoverMs } = await redis.cluster.killMasterOf(redis.prefix);
      tally.failoverMs.push(failoverMs);
      log(`[${progress()}] its replica took over ${(failoverMs / 1000).toFixed(1)} s after the SIGKILL of 127.0.0.1:${port}`);
      return;
    }
    case 'kill-postgres': {
      const count = await terminateConnections(database.url);
      tally.pgKills += 1;
      tally.pgConnectionsKilled += count;
      log(`[${at}] terminated ${count} PostgreSQL connections`);
      return;
    }
  }
}

/** How long spending operations in flight when the load ends still get for their answer. */
const SPENDING_DRAIN_MS = 60_000;

/**
 * Customers place and pay the planned orders, and the merchant's backend spends on the accounts
 * they credit, while the planned violence happens at its moments.
 */
export async function playLoadUnderChaos(
  ctx: RunContext,
  system: RunningSystem,
  redis: RunRedis,
  database: RunDatabase,
): Promise<LoadOutcome> {
  const { options, log } = ctx;
  const runId = randomBytes(4).toString('hex');
  const plans = planOrders(ctx.rng, options.orders, options.accounts, runId);
  const actions = planActions(ctx.rng, options.workerKills ?? 2, options.killAllWorkers ?? 1, redis.kind);
  const outcome = { pgKills: 0, pgConnectionsKilled: 0, eventJobsFlushed: 0, failoverMs: [] as number[] };
  let done = 0;
  let loadFinished = false;
  let loadFailed = false;
  const { workers } = system;
  const customers = new Customers(system.receiverUrl, system.emulatorUrl, ORDERS_API_KEY, ctx.signal);

  // The accounts of the orders played so far that pay (most are credited by now, some soon).
  const creditedAccounts: string[] = [];
  const seenAccounts = new Set<string>();
  let scanned = 0;
  const spenders = new Spenders({
    receiverUrl: system.receiverUrl,
    apiKey: ORDERS_API_KEY,
    seed: ctx.seed + 7_919,
    concurrency: options.spendingConcurrency ?? 6,
    creditedAccounts: () => {
      for (; scanned < done; scanned += 1) {
        const plan = plans[scanned];
        if (!plan || plan.scenario === 'unpaid' || plan.scenario === 'failed' || seenAccounts.has(plan.accountId)) continue;
        seenAccounts.add(plan.accountId);
        creditedAccounts.push(plan.accountId);
      }
      return creditedAccounts;
    },
    // A few accounts several spenders race for.
    hotAccounts: [...new Set(plans.slice(0, Math.min(plans.length, 4)).map((plan) => plan.accountId))],
  });
  if ((options.spendingConcurrency ?? 6) > 0) spenders.start();

  const progress = () => `${done}/${plans.length}`;
  const monkey = (async () => {
    for (const action of actions) {
      await waitUntil(async () => loadFinished || done >= action.at * plans.length, 30 * 60_000, 'the next chaos moment', 20);
      if (loadFailed) return;
      await strike(ctx, system, redis, database, action, progress, outcome);
    }
  })();

  let records: OrderRecord[];
  try {
    let lastReport = 0;
    records = await customers.playAll(plans, options.clientConcurrency ?? 12, (count) => {
      done = count;
      if (count - lastReport >= Math.max(100, plans.length / 10)) {
        lastReport = count;
        log(`${count}/${plans.length} orders played`);
      }
    });
  } catch (error) {
    loadFailed = true;
    throw error;
  } finally {
    loadFinished = true;
    await monkey.catch((error: unknown) => log(`chaos action failed: ${String(error)}`));
    await spenders.stop(loadFailed || ctx.signal?.aborted ? 0 : SPENDING_DRAIN_MS);
  }
  await monkey;
  const { book } = spenders;
  log(
    `spending: ${book.debits.length} debits and ${book.holds.length} holds asked (${book.requests} requests, ${book.retries} retries, answers ${Object.entries(
      book.statuses,
    )
      .map(([status, count]) => `${status} ${count}`)
      .join(', ')})`,
  );
  log(`load done in ${Math.round((Date.now() - ctx.started) / 1000)} s; waiting for the system to go quiet`);
  log(
    `client latency (mean/max ms): ${Object.entries(customers.counters.latency)
      .map(([route, l]) => `${route} ${Math.round(l.totalMs / l.count)}/${Math.round(l.maxMs)} (${l.count})`)
      .join(', ')}`,
  );
  await workers.settle();
  return { ...outcome, records, clientRetries: customers.counters.retries, spending: book };
}
