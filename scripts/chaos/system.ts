/**
 * Bringing the system up for a chaos run: its database, its Redis (one server or a cluster), then the
 * emulator, the receiver and the workers, each waited for until it answers.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HANDLED_EVENT_TYPES, connectRedis, createPrismaClient, type RedisConnection } from '@ledger/shared';
import { createChaosDatabase, databaseName } from './database.js';
import { freePorts, startChild, waitUntil, type RunningProcess as ChildApp } from '@ledger/testkit';
import type { RunContext } from './context.js';
import { ChaosRedisCluster } from './redis-cluster.js';
import { ChaosRedis } from './redis-server.js';
import { WorkerPool } from './workers.js';

const WEBHOOK_SECRET = `whsec_chaos_${randomBytes(12).toString('hex')}`;
/** The second endpoint's secret: Stripe's upgrade recipe runs two endpoints, each with its own. */
const UPGRADE_WEBHOOK_SECRET = `whsec_chaos_upgrade_${randomBytes(12).toString('hex')}`;
/** The main endpoint is at an API version from before 2022-11-15 (charges and refunds lists inline). */
const OLD_API_VERSION = '2022-08-01';
/** The customers call the orders API as the merchant's backend does, with a service key. */
export const ORDERS_API_KEY = `chaos_${randomBytes(24).toString('base64url')}`;
/** On a cluster the prefix carries a hash tag: each queue's keys in one slot (what the apps require). */
const QUEUE_PREFIX = { single: 'chaos', cluster: '{chaos}' } as const;
const WORKER_LOCK_DURATION_MS = 5_000;

export interface EmulatorStats {
  events: { created: number; undelivered: number; dropped: number; duplicated: number };
  deliveries: { attempted: number; succeeded: number; failed: number; exhausted: number; pending: number; inFlight: number };
}

export async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

export async function withPrisma<T>(url: string, work: (prisma: ReturnType<typeof createPrismaClient>) => Promise<T>): Promise<T> {
  const prisma = createPrismaClient(url, { poolSize: 2, applicationName: 'chaos-verify' });
  try {
    return await work(prisma);
  } finally {
    await prisma.$disconnect();
  }
}

export interface RunDatabase {
  name: string;
  url: string;
}

/** The run's Redis: one server, or a cluster; the URL and queue prefix the apps get. */
export type RunRedis = { url: string; prefix: string } & (
  | { kind: 'single'; server: ChaosRedis }
  | { kind: 'cluster'; cluster: ChaosRedisCluster }
);

/** The system's processes, up and answering. */
export interface RunningSystem {
  emulator: ChildApp;
  receiver: ChildApp;
  workers: WorkerPool;
  emulatorUrl: string;
  receiverUrl: string;
  /** Environment every app of the system and every command gets. */
  env: Record<string, string>;
}

/** The run's database: the caller's, or a new one dropped at the end unless the run failed or is kept. */
export async function prepareDatabase(ctx: RunContext): Promise<RunDatabase> {
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

export async function startRedis(ctx: RunContext): Promise<RunRedis> {
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
export function monitorConnection(redis: RunRedis): RedisConnection {
  const connection = connectRedis(redis.url, { maxRetriesPerRequest: 3 });
  connection.on('error', () => undefined);
  return connection;
}

/** Starts the emulator, the receiver and the workers, and waits until each answers. */
export async function startSystem(ctx: RunContext, database: RunDatabase, redis: RunRedis): Promise<RunningSystem> {
  const { options } = ctx;
  const [emulatorPort, receiverPort] = await freePorts(2);
  const emulatorUrl = `http://127.0.0.1:${emulatorPort}`;
  const receiverUrl = `http://127.0.0.1:${receiverPort}`;
  const env = {
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    QUEUE_PREFIX: redis.prefix,
    STRIPE_API_BASE: emulatorUrl,
    STRIPE_WEBHOOK_SECRET: `${WEBHOOK_SECRET},${UPGRADE_WEBHOOK_SECRET}`,
    // No STRIPE_SECRET_KEY: the apps use the emulator's key against STRIPE_API_BASE.
    STRIPE_SECRET_KEY: '',
  };

  const emulator = startChild({
    name: 'stripe-emulator',
    script: 'packages/stripe-emulator/src/main.ts',
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
      // Nor the spending budget: a few hot accounts take several spenders at once.
      SPENDING_RATE_LIMIT_ACCOUNT: '1000000',
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
      // The endpoint subscribes to what the worker handles, as a Stripe endpoint would be set up,
      // at an old API version; a second endpoint at the SDK's version (an upgrade under way, Stripe's
      // recipe) gets the refund and dispute events again, same ids, the newer shape, its own secret.
      enabledEvents: [...HANDLED_EVENT_TYPES],
      webhookApiVersion: OLD_API_VERSION,
      endpoints: [
        {
          url: `${receiverUrl}/webhooks/stripe`,
          secret: UPGRADE_WEBHOOK_SECRET,
          enabledEvents: ['charge.refunded', 'charge.dispute.*'],
        },
      ],
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
