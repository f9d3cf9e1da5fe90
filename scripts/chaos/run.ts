import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HANDLED_EVENT_TYPES, QUEUES, connectRedis, createPrismaClient, type RedisConnection } from '@ledger/shared';
import { Queue } from 'bullmq';
import type { ReconcileReport } from '../../apps/order-worker/src/operations/reconcile.js';
import { createChaosDatabase, databaseName, terminateConnections } from './database.js';
import { Rng, freePorts, sleep, startChild, waitUntil, type RunningProcess as ChildApp } from '@ledger/testkit';
import { ChaosRedisCluster } from './redis-cluster.js';
import { ChaosRedis } from './redis-server.js';
import { verifyRun, type VerifyReport } from './verify.js';
import { Customers, planOrders, type OrderRecord } from './workload.js';

/** How big and how rough a run is. */
export interface ChaosOptions {
  /** Orders placed (each paid, failed, refunded or disputed per its scenario). */
  orders: number;
  /** Accounts they credit. */
  accounts: number;
  /** Worker processes running at once (at least two). */
  workers?: number;
  /** WORKER_CONCURRENCY of each worker process. */
  workerConcurrency?: number;
  /** Customers placing and paying orders at once. */
  clientConcurrency?: number;
  /** SIGKILLs of one random worker, at random moments of the load (besides the kill-all ones). */
  workerKills?: number;
  /** Moments at which every worker is SIGKILLed at once. */
  killAllWorkers?: number;
  /** Share of events the emulator delivers more than once. */
  duplicateRate?: number;
  /** Share of events the emulator never delivers: only the final reconciliation pass can find them. */
  dropRate?: number;
  /** How the run's Redis is stopped before its restart: SIGKILL is a crash (unsynced AOF writes lost). */
  redisStopSignal?: 'SIGKILL' | 'SIGTERM';
  /**
   * Run on a Redis Cluster of the run's own (3 masters, 3 replicas) instead of one redis-server: the
   * master serving the queues' slot is SIGKILLed once during the load (its replica takes over)
   * instead of the single server's crash-restart and flush.
   */
  redisCluster?: boolean;
  /** Seeds the plan, the chaos moments and the emulator's delivery chaos. */
  seed?: number;
  /** A migrated, empty database to use (tests pass theirs); default: a new `ledger_chaos_<random>`. */
  databaseUrl?: string;
  /** Keep the database the run created (default: drop it unless the run failed). */
  keepDatabase?: boolean;
  /** Keep the processes' logs (default: only when the run failed). */
  keepLogs?: boolean;
  /**
   * CPU niceness of the system's processes (0: none). Tests use it so that a test file running in
   * parallel keeps its share of the two cores.
   */
  niceness?: number;
  /** Longest wait for the system to go quiet after the load. */
  quiescenceTimeoutMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

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
  verify: VerifyReport;
  /** Where the processes' logs are (kept when the run fails). */
  logDir: string;
  database: string;
  /** The one-line summary. */
  line: string;
}

const WEBHOOK_SECRET = `whsec_chaos_${randomBytes(12).toString('hex')}`;
/** The customers call the orders API as the merchant's backend does, with a service key. */
const ORDERS_API_KEY = `chaos_${randomBytes(24).toString('base64url')}`;
/** On a cluster the prefix carries a hash tag: each queue's keys in one slot (what the apps require). */
const QUEUE_PREFIX = { single: 'chaos', cluster: '{chaos}' } as const;
const WORKER_LOCK_DURATION_MS = 5_000;

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

/** The order-worker processes: started, killed at random, restarted, crash-watched. */
class WorkerPool {
  private readonly live = new Map<string, { app: ChildApp; startedAt: number | undefined; killed: boolean }>();
  private readonly restarts = new Set<Promise<void>>();
  private started = 0;
  private closing = false;
  kills = 0;
  restartCount = 0;
  /** Workers that refused to start because Redis or PostgreSQL was down at that moment (fail fast). */
  refusedStarts = 0;
  stalled = 0;
  retried = 0;
  readonly crashes: string[] = [];

  constructor(
    private readonly env: Record<string, string>,
    private readonly logDir: string,
    private readonly rng: Rng,
    private readonly log: (line: string) => void,
    private readonly niceness: number | undefined,
  ) {}

  spawn(): void {
    this.started += 1;
    const name = `worker-${this.started}`;
    const entry = { app: undefined as unknown as ChildApp, startedAt: undefined as number | undefined, killed: false };
    entry.app = startChild({
      name,
      script: 'apps/order-worker/src/main.ts',
      env: this.env,
      logDir: this.logDir,
      niceness: this.niceness,
      onLine: (line) => {
        if (line.includes('order worker started')) entry.startedAt = Date.now();
        else if (line.includes('job stalled')) this.stalled += 1;
        else if (line.includes('job failed, will retry')) this.retried += 1;
      },
    });
    this.live.set(name, entry);
    void entry.app.exited.then((code) => {
      this.live.delete(name);
      if (entry.killed || this.closing) return;
      // Started while Redis or PostgreSQL was down, it stopped at once as it should: a supervisor
      // starts it again a moment later.
      if (entry.startedAt === undefined && entry.app.tail.some((line) => line.includes(' cannot start: '))) {
        this.refusedStarts += 1;
        this.log(`${name} refused to start (${entry.app.tail.at(-1)}); starting another in 1 s`);
        this.later(1_000, () => this.spawn());
        return;
      }
      // Nobody killed it: a crash. Note it (it is a finding) and keep the pool at strength.
      this.crashes.push(`${name} exited (${code}): ${entry.app.tail.slice(-5).join(' | ')}`);
      this.log(`!! ${name} crashed (${code}); restarting it`);
      this.spawn();
    });
  }

  /** Workers that finished booting at least `minUpMs` ago: killing one mid-boot proves little. */
  private ready(minUpMs: number) {
    return [...this.live.values()].filter(
      (entry) => !entry.killed && entry.startedAt !== undefined && Date.now() - entry.startedAt >= minUpMs,
    );
  }

  private async kill(entries: { app: ChildApp; killed: boolean }[]): Promise<void> {
    for (const entry of entries) entry.killed = true;
    await Promise.all(entries.map((entry) => entry.app.stop('SIGKILL', 0)));
    this.kills += entries.length;
    // Back after a moment, as a supervisor (systemd, Kubernetes) would bring it back.
    this.later(this.rng.int(200, 1_500), () => {
      for (let i = 0; i < entries.length; i += 1) {
        this.spawn();
        this.restartCount += 1;
      }
    });
  }

  /** Runs `start` after `delayMs` unless the pool is closing by then; close() waits for it. */
  private later(delayMs: number, start: () => void): void {
    const restart = sleep(delayMs).then(() => {
      if (!this.closing) start();
    });
    this.restarts.add(restart);
    void restart.finally(() => this.restarts.delete(restart));
  }

  async killOne(): Promise<string> {
    await waitUntil(async () => this.ready(500).length > 0, 60_000, 'a booted worker to kill', 50);
    const entry = this.rng.pick(this.ready(500));
    await this.kill([entry]);
    return entry.app.name;
  }

  async killAll(): Promise<number> {
    await waitUntil(async () => this.ready(0).length > 0, 60_000, 'booted workers to kill', 50);
    const entries = [...this.live.values()].filter((entry) => !entry.killed);
    await this.kill(entries);
    return entries.length;
  }

  /** Waits for pending restarts, then for every worker to have booted. */
  async settle(timeoutMs = 60_000): Promise<void> {
    await Promise.all(this.restarts);
    await waitUntil(
      async () => [...this.live.values()].every((entry) => entry.startedAt !== undefined),
      timeoutMs,
      'restarted workers to boot',
      100,
    );
  }

  async stop(): Promise<void> {
    this.closing = true;
    await Promise.all(this.restarts);
    await Promise.all([...this.live.values()].map((entry) => entry.app.stop('SIGTERM', 10_000)));
  }
}

interface EmulatorStats {
  events: { created: number; undelivered: number; dropped: number; duplicated: number };
  deliveries: { attempted: number; succeeded: number; failed: number; exhausted: number; pending: number; inFlight: number };
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

async function withPrisma<T>(url: string, work: (prisma: ReturnType<typeof createPrismaClient>) => Promise<T>): Promise<T> {
  const prisma = createPrismaClient(url, { poolSize: 2, applicationName: 'chaos-verify' });
  try {
    return await work(prisma);
  } finally {
    await prisma.$disconnect();
  }
}

/** Runs a command-line tool of the worker app to its end; returns its output or throws with it. */
async function runCli(name: string, args: string[], env: Record<string, string>, logDir: string): Promise<string> {
  const app = startChild({ name, args: ['--import', 'tsx', ...args], env, logDir });
  const code = await app.exited;
  const output = app.tail.join('\n');
  if (code !== 0) throw new Error(`${name} exited ${code}:\n${output}`);
  return output;
}

export function formatSummary(s: Omit<ChaosSummary, 'line'>): string {
  const v = s.verify;
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
    `${Math.round(s.durationMs / 1000)} s, seed ${s.seed}`,
  ].join(', ');
}

/** What every phase of a run shares: its options, its randomness, its files and its clean-up steps. */
interface RunContext {
  options: ChaosOptions;
  log: (line: string) => void;
  rng: Rng;
  seed: number;
  started: number;
  signal: AbortSignal | undefined;
  workDir: string;
  logDir: string;
  /** Run in reverse order at the end, each one even when another fails. */
  cleanups: (() => Promise<unknown>)[];
  /** Keep the database and the logs (the run failed). */
  keepArtifacts: boolean;
}

interface RunDatabase {
  name: string;
  url: string;
}

/** The run's Redis: one server, or a cluster; the URL and queue prefix the apps get. */
type RunRedis = { url: string; prefix: string } & (
  | { kind: 'single'; server: ChaosRedis }
  | { kind: 'cluster'; cluster: ChaosRedisCluster }
);

/** The system's processes, up and answering. */
interface RunningSystem {
  emulator: ChildApp;
  receiver: ChildApp;
  workers: WorkerPool;
  emulatorUrl: string;
  receiverUrl: string;
  /** Environment every app of the system and every command gets. */
  env: Record<string, string>;
}

/** What the load and the violence did. */
interface LoadOutcome {
  records: OrderRecord[];
  clientRetries: number;
  pgKills: number;
  pgConnectionsKilled: number;
  eventJobsFlushed: number;
  failoverMs: number[];
}

/** The failed jobs found after the load, and what replaying the stalled event jobs left. */
interface FailedJobsOutcome {
  failedJobs: FailedJob[];
  unexplainedFailedJobs: number;
  replayed: number;
  lostBeforeReplay: number;
}

/** The run's database: the caller's, or a new one dropped at the end unless the run failed or is kept. */
async function prepareDatabase(ctx: RunContext): Promise<RunDatabase> {
  if (ctx.options.databaseUrl) return { name: databaseName(ctx.options.databaseUrl), url: ctx.options.databaseUrl };
  const database = await createChaosDatabase();
  ctx.log(`database ${database.name} created and migrated`);
  ctx.cleanups.push(async () => {
    if (ctx.options.keepDatabase || ctx.keepArtifacts)
      ctx.log(`database ${database.name} kept (drop it with: DROP DATABASE "${database.name}")`);
    else await database.drop();
  });
  return database;
}

async function startRedis(ctx: RunContext): Promise<RunRedis> {
  const dir = join(ctx.workDir, 'redis');
  await mkdir(dir);
  if (ctx.options.redisCluster) {
    const cluster = await ChaosRedisCluster.start(dir, ctx.logDir);
    ctx.cleanups.push(() => cluster.stop());
    ctx.log(`Redis Cluster of 3 masters and 3 replicas on ${cluster.url} (appendonly, dir ${dir})`);
    return { kind: 'cluster', cluster, url: cluster.url, prefix: QUEUE_PREFIX.cluster };
  }
  const server = await ChaosRedis.start(dir, ctx.logDir);
  ctx.cleanups.push(() => server.stop());
  ctx.log(`redis-server on ${server.url} (appendonly, dir ${dir})`);
  return { kind: 'single', server, url: server.url, prefix: QUEUE_PREFIX.single };
}

/** A connection for the run's own questions to Redis (queue counts), on either kind. */
function monitorConnection(redis: RunRedis): RedisConnection {
  const connection = connectRedis(redis.url, { maxRetriesPerRequest: 3 });
  connection.on('error', () => undefined);
  return connection;
}

/** Starts the emulator, the receiver and the workers, and waits until each answers. */
async function startSystem(ctx: RunContext, database: RunDatabase, redis: RunRedis): Promise<RunningSystem> {
  const { options } = ctx;
  const [emulatorPort, receiverPort] = await freePorts(2);
  const emulatorUrl = `http://127.0.0.1:${emulatorPort}`;
  const receiverUrl = `http://127.0.0.1:${receiverPort}`;
  const env = {
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    QUEUE_PREFIX: redis.prefix,
    STRIPE_API_BASE: emulatorUrl,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    // No STRIPE_SECRET_KEY: the apps use the emulator's key against STRIPE_API_BASE.
    STRIPE_SECRET_KEY: '',
  };

  const emulator = startChild({
    name: 'stripe-emulator',
    script: 'apps/stripe-emulator/src/main.ts',
    env: {
      LOG_LEVEL: 'warn',
      STRIPE_EMULATOR_HOST: '127.0.0.1',
      STRIPE_EMULATOR_PORT: String(emulatorPort),
      STRIPE_WEBHOOK_URL: `${receiverUrl}/webhooks/stripe`,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
    logDir: ctx.logDir,
    niceness: options.niceness,
  });
  ctx.cleanups.push(() => emulator.stop('SIGTERM', 5_000));
  const receiver = startChild({
    name: 'webhook-receiver',
    script: 'apps/webhook-receiver/src/server.ts',
    env: {
      ...env,
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(receiverPort),
      ORDERS_API_KEYS: ORDERS_API_KEY,
      // The run proves exactly-once under load, not the rate limits: its accounts order in bursts.
      ORDERS_RATE_LIMIT_ACCOUNT: '1000000',
    },
    logDir: ctx.logDir,
    niceness: options.niceness,
  });
  ctx.cleanups.push(() => receiver.stop('SIGTERM', 10_000));

  const workers = new WorkerPool(
    {
      ...env,
      // Info: the pool reads "order worker started" and counts stalls and retries from the log.
      LOG_LEVEL: 'info',
      WORKER_CONCURRENCY: String(options.workerConcurrency ?? 6),
      // Jobs of a killed worker are taken over after the lock expires (stalled-job check).
      WORKER_LOCK_DURATION_MS: String(WORKER_LOCK_DURATION_MS),
      // No schedule: the run reconciles once, at the end, and says what that pass recovered.
      RECONCILE_INTERVAL_SECONDS: '0',
      STRIPE_MAX_RPS: '100',
    },
    ctx.logDir,
    ctx.rng,
    ctx.log,
    options.niceness,
  );
  ctx.cleanups.push(() => workers.stop());
  const workerCount = Math.max(2, options.workers ?? 2);
  for (let i = 0; i < workerCount; i += 1) workers.spawn();

  const alive = (app: ChildApp) => {
    if (app.done) throw new Error(`${app.name} exited during start-up:\n${app.tail.join('\n')}`);
  };
  await waitUntil(
    async () => {
      alive(emulator);
      return getJson(`${emulatorUrl}/_emulator/config`).then(
        () => true,
        () => false,
      );
    },
    60_000,
    'the emulator',
  );
  const configure = await fetch(`${emulatorUrl}/_emulator/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      // The endpoint subscribes to what the worker handles, as a Stripe endpoint would be set up.
      enabledEvents: [...HANDLED_EVENT_TYPES],
      duplicateRate: options.duplicateRate ?? 0.3,
      dropRate: options.dropRate ?? 0,
      reorder: true,
      concurrency: 8,
      delayMs: [0, 30],
      // Enough retries to outlast a Redis restart or a failover (the receiver answers 503 meanwhile).
      retry: { attempts: 14, baseDelayMs: 100 },
      seed: ctx.seed,
    }),
  });
  if (!configure.ok) throw new Error(`configuring the emulator failed: ${await configure.text()}`);
  await waitUntil(
    async () => {
      alive(receiver);
      return getJson(`${receiverUrl}/readyz`).then(
        () => true,
        () => false,
      );
    },
    60_000,
    'the receiver',
  );
  await workers.settle();
  ctx.log(
    `emulator ${emulatorUrl}, receiver ${receiverUrl}, ${workerCount} workers up (${Math.round((Date.now() - ctx.started) / 1000)} s)`,
  );
  return { emulator, receiver, workers, emulatorUrl, receiverUrl, env };
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

/** Customers place and pay the planned orders while the planned violence happens at its moments. */
async function playLoadUnderChaos(ctx: RunContext, system: RunningSystem, redis: RunRedis, database: RunDatabase): Promise<LoadOutcome> {
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

  const act = async (action: ChaosAction) => {
    const at = `${done}/${plans.length}`;
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
        log(`[${done}/${plans.length}] redis-server back`);
        return;
      }
      case 'flush-redis': {
        if (redis.kind !== 'single') return;
        // Workers down for a moment so acknowledged jobs pile up, then Redis forgets them all.
        log(`[${at}] SIGKILL all ${await workers.killAll()} workers before the flush`);
        await sleep(150);
        outcome.eventJobsFlushed = await pendingEventJobs(redis);
        await redis.server.flush();
        log(`[${at}] FLUSHALL: Redis lost every job it held (${outcome.eventJobsFlushed} event jobs not applied yet)`);
        return;
      }
      case 'fail-over-redis': {
        if (redis.kind !== 'cluster') return;
        // The master of the queues' slot (the prefix's hash tag decides it): every enqueue and
        // every job move goes there. Whatever it had not replicated yet is gone with it.
        log(`[${at}] SIGKILL the Redis master serving ${redis.prefix}`);
        const { port, failoverMs } = await redis.cluster.killMasterOf(redis.prefix);
        outcome.failoverMs.push(failoverMs);
        log(`[${done}/${plans.length}] its replica took over ${(failoverMs / 1000).toFixed(1)} s after the SIGKILL of 127.0.0.1:${port}`);
        return;
      }
      case 'kill-postgres': {
        const count = await terminateConnections(database.url);
        outcome.pgKills += 1;
        outcome.pgConnectionsKilled += count;
        log(`[${at}] terminated ${count} PostgreSQL connections`);
        return;
      }
    }
  };
  const monkey = (async () => {
    for (const action of actions) {
      await waitUntil(async () => loadFinished || done >= action.at * plans.length, 30 * 60_000, 'the next chaos moment', 20);
      if (loadFailed) return;
      await act(action);
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
  }
  await monkey;
  log(`load done in ${Math.round((Date.now() - ctx.started) / 1000)} s; waiting for the system to go quiet`);
  log(
    `client latency (mean/max ms): ${Object.entries(customers.counters.latency)
      .map(([route, l]) => `${route} ${Math.round(l.totalMs / l.count)}/${Math.round(l.maxMs)} (${l.count})`)
      .join(', ')}`,
  );
  await workers.settle();
  return { ...outcome, records, clientRetries: customers.counters.retries };
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

/** Compares the ledger with what Stripe did and gives the verdict. */
async function judge(
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
  const { verify, handledEvents } = await withPrisma(database.url, async (prisma) => ({
    verify: await verifyRun(prisma, load.records),
    handledEvents: await prisma.stripeEvent.count(),
  }));
  for (const detail of verify.details) ctx.log(`  ${detail}`);

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
    stats.deliveries.exhausted === 0;
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
    verify,
    logDir: ctx.logDir,
    database: database.name,
  };
  return { ...summary, line: formatSummary(summary) };
}

/**
 * The chaos run: the emulator, the receiver and worker processes on real PostgreSQL and a Redis of
 * the run's own; orders created through `POST /orders` and paid, refunded and disputed through the
 * emulator, which delivers duplicates, reordered and concurrently (some refunds fail afterwards, and
 * another integration's payments on the same account send events that are not ours); workers
 * SIGKILLed and restarted at random moments, every PostgreSQL connection terminated once, and Redis
 * crashed and restarted once and flushed once (every job it held is gone, acknowledged or not) or,
 * on a Redis Cluster, the master of the queues' slot SIGKILLed once (its replica takes over, without
 * what it had not replicated yet). After the system goes quiet, one reconciliation pass
 * (`npm run reconcile`) recovers what Redis lost, and the ledger is compared with what Stripe did.
 * Every process it starts is stopped.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  const seed = options.seed ?? randomInt(2 ** 31);
  const workDir = await mkdtemp(join(tmpdir(), 'ledger-chaos-'));
  const ctx: RunContext = {
    options,
    log: options.log ?? (() => undefined),
    rng: new Rng(seed),
    seed,
    started: Date.now(),
    signal: options.signal,
    workDir,
    logDir: join(workDir, 'logs'),
    cleanups: [],
    keepArtifacts: false,
  };
  await mkdir(ctx.logDir);
  try {
    const database = await prepareDatabase(ctx);
    const redis = await startRedis(ctx);
    const system = await startSystem(ctx, database, redis);
    const load = await playLoadUnderChaos(ctx, system, redis, database);
    const queues = monitorQueues(ctx, redis);
    await waitForQuiet(ctx, system, queues, 'after the load');
    ctx.log(`quiet after ${Math.round((Date.now() - ctx.started) / 1000)} s; reconciling once`);

    const cliEnv = { ...system.env, LOG_LEVEL: 'warn', RECONCILE_STALE_AFTER_SECONDS: '0', STRIPE_MAX_RPS: '100' };
    const reconcile = await reconcileWithCli(cliEnv, ctx.logDir);
    ctx.log(
      `reconcile: ${reconcile.eventsListed} Stripe events listed, ${reconcile.eventsEnqueued} the inbox lacked queued now (${reconcile.eventsInFlight} already queued), ${reconcile.payments.uncredited.length} payments not credited yet`,
    );
    await waitForQuiet(ctx, system, queues, 'after reconciliation');
    const failed = await replayStalledEvents(ctx, system, queues, database, load.records, cliEnv);

    const summary = await judge(ctx, { database, redis, system, load, reconcile, failed });
    ctx.keepArtifacts = !summary.ok;
    return summary;
  } catch (error) {
    ctx.keepArtifacts = true;
    throw error;
  } finally {
    // Workers, then intake, then Redis and the database (reverse start order); every step runs.
    for (const cleanup of ctx.cleanups.reverse()) {
      await cleanup().catch((error: unknown) => ctx.log(`cleanup step failed: ${String(error)}`));
    }
    if (ctx.keepArtifacts || options.keepLogs) ctx.log(`logs kept in ${ctx.logDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }
}
