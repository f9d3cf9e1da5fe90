import { createPrismaClient, stripeEventJobData } from '@ledger/shared';
import { performance } from 'node:perf_hooks';
import type { PaymentCredit } from '@ledger/ledger';
import { creditPayments } from '@ledger/ledger';
import { checkBatchCredited, seedOrders, type BenchDatabase } from '../lib/bench-database.js';
import { readPaymentCredit } from '../baselines/plain-pg-credit.js';
import { readServiceCpu, serviceCpuUsed } from '../lib/service-cpu.js';
import { benchOrder, paymentSucceededEvent } from '../lib/stripe-events.js';
import type { RunContext } from '../lib/system-processes.js';

export interface CeilingLevel {
  connections: number;
  credits: number;
  creditsPerSecond: number;
  /** CPU of the PostgreSQL backends per credit, in ms. */
  postgresCpuMsPerCredit: number;
}

export interface PostgresCeilingResult {
  batchSize: number;
  levels: CeilingLevel[];
  /** What one credited event leaves in PostgreSQL, indexes included (total relation size ÷ rows). */
  bytesPerCredit: { ledger: number; inbox: number; orders: number };
}

/**
 * What one PostgreSQL takes: the worker's hot path — the group-commit statement through Prisma
 * (`creditPayments`), batches of WORKER_BATCH_SIZE — with no Redis and no HTTP, from 1, 4 and 16
 * connections at once. Each level credits fresh orders of many accounts (no lock queue on one
 * account row), and the result is checked: every order credited once, balances equal to ledgers.
 */
export async function runPostgresCeilingBenchmark(context: RunContext, db: BenchDatabase): Promise<PostgresCeilingResult> {
  const { config } = context;
  const batchSize = config.workerBatchSize;
  const levels: CeilingLevel[] = [];
  for (const connections of config.ceilingConnections) {
    const batch = `ceil${connections}`;
    await seedOrders(db.pool, batch, config.ceilingCredits);
    const credits: PaymentCredit[] = Array.from({ length: config.ceilingCredits }, (_, index) =>
      readPaymentCredit(undefined, stripeEventJobData(paymentSucceededEvent(benchOrder(batch, index)))),
    );
    const prisma = createPrismaClient(db.url, { poolSize: connections, applicationName: 'bench-ceiling' });
    try {
      await prisma.$queryRaw`SELECT 1`;
      let next = 0;
      const client = async () => {
        for (;;) {
          const start = next;
          next += batchSize;
          const slice = credits.slice(start, start + batchSize);
          if (slice.length === 0) return;
          const results = await creditPayments(prisma, slice);
          if (!results || results.some((result) => !result.inserted)) throw new Error(`ceiling: a batch of ${batch} was not credited`);
        }
      };
      const database = { pool: db.pool, name: db.name };
      const before = await readServiceCpu(config.redisUrl, database);
      const started = performance.now();
      await Promise.all(Array.from({ length: connections }, client));
      const seconds = (performance.now() - started) / 1000;
      const used = serviceCpuUsed(before, await readServiceCpu(config.redisUrl, database));
      const problem = await checkBatchCredited(db.pool, batch, config.ceilingCredits);
      if (problem) throw new Error(`ceiling at ${connections} connections: ${problem}`);
      levels.push({
        connections,
        credits: config.ceilingCredits,
        creditsPerSecond: config.ceilingCredits / seconds,
        postgresCpuMsPerCredit: used.postgresMs / config.ceilingCredits,
      });
    } finally {
      await prisma.$disconnect();
    }
  }
  const { rows } = await db.pool.query<{ ledger: string; inbox: string; orders: string }>(`
    SELECT pg_total_relation_size('ledger_entries') / GREATEST((SELECT count(*) FROM ledger_entries), 1) AS ledger,
           pg_total_relation_size('stripe_events') / GREATEST((SELECT count(*) FROM stripe_events), 1) AS inbox,
           pg_total_relation_size('orders') / GREATEST((SELECT count(*) FROM orders), 1) AS orders`);
  const sizes = rows[0]!;
  return { batchSize, levels, bytesPerCredit: { ledger: Number(sizes.ledger), inbox: Number(sizes.inbox), orders: Number(sizes.orders) } };
}
