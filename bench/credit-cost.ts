/**
 * Where one credit's time goes, without BullMQ and without concurrency: the same
 * `payment_intent.succeeded` applied one at a time by the real worker's code (in this process)
 * and by the plain-pg baselines, with wall time and this process's CPU time per credit, next to
 * the bare PostgreSQL round trip. A profiling aid for a missed worker target, not part of
 * `npm run bench`.
 *
 *   npx tsx bench/credit-cost.ts            (BENCH_CREDIT_COST_EVENTS=500 per variant)
 */
import { createLogger, createPrismaClient, stripeEventJobData } from '@ledger/shared';
import os from 'node:os';
import pg from 'pg';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { paymentFactsFromEvent } from '../apps/order-worker/src/event-facts.js';
import { applyPaymentFacts } from '../apps/order-worker/src/ledger.js';
import { createWorkerMetrics } from '../apps/order-worker/src/metrics.js';
import { processStripeEvent } from '../apps/order-worker/src/worker.js';
import { createBenchDatabase, seedOrders } from './bench-database.js';
import { loadBenchConfig } from './config.js';
import { creditWithOneStatement, creditWithStatements, readPaymentSucceeded } from './plain-pg-credit.js';
import { benchOrder, paymentSucceededEvent } from './stripe-events.js';

const config = loadBenchConfig([]);
const events = Number(process.env.BENCH_CREDIT_COST_EVENTS ?? 500);
/** Credits run before measuring each variant: JIT, connections and Prisma's caches warm up. */
const WARMUP = 100;

interface Cost {
  variant: string;
  wallMs: number;
  cpuMs: number;
}

/** Runs `credit` on `count` fresh orders of `batch`, one after the other; per-credit averages. */
async function measure(variant: string, batch: string, count: number, credit: (job: unknown) => Promise<unknown>): Promise<Cost> {
  const jobs = Array.from({ length: count }, (_, index) => stripeEventJobData(paymentSucceededEvent(benchOrder(batch, index))));
  for (const job of jobs.slice(0, WARMUP)) await credit(job);
  const measured = jobs.slice(WARMUP);
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  for (const job of measured) await credit(job);
  const wall = performance.now() - wallBefore;
  const cpu = process.cpuUsage(cpuBefore);
  return { variant, wallMs: wall / measured.length, cpuMs: (cpu.user + cpu.system) / 1000 / measured.length };
}

const db = await createBenchDatabase(config.adminDatabaseUrl);
const prisma = createPrismaClient(db.url, { poolSize: 2, applicationName: 'bench-credit-cost' });
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
try {
  for (const batch of ['real', 'apply', 'logged', 'plain', 'single']) await seedOrders(db.pool, `cc${batch}`, events + WARMUP);
  const metrics = createWorkerMetrics(new Registry());
  const silent = createLogger('credit-cost', 'silent');
  // The real worker logs at info to stdout; here to /dev/null, so the cost is the formatting.
  const logged = createLogger('credit-cost', 'info', pino.destination('/dev/null'));

  const costs: Cost[] = [
    await measure('one PostgreSQL round trip (SELECT 1)', 'ccrtt', events + WARMUP, () => pool.query('SELECT 1')),
    await measure('real: processStripeEvent (zod + Prisma), no logs', 'ccreal', events + WARMUP, (job) => processStripeEvent({ prisma, metrics }, job, silent)),
    await measure('real: applyPaymentFacts only (Prisma, no zod)', 'ccapply', events + WARMUP, (job) => {
      const data = job as Parameters<typeof paymentFactsFromEvent>[0];
      return applyPaymentFacts(prisma, paymentFactsFromEvent(data), { id: data.id, type: data.type, objectId: String(data.object.id), created: data.created });
    }),
    await measure('real: processStripeEvent, info logs', 'cclogged', events + WARMUP, (job) => processStripeEvent({ prisma, metrics }, job, logged)),
    await measure('plain pg, transaction path (8 round trips)', 'ccplain', events + WARMUP, (job) => creditWithStatements(pool, readPaymentSucceeded(undefined, job))),
    await measure('plain pg, one-statement path', 'ccsingle', events + WARMUP, (job) => creditWithOneStatement(pool, readPaymentSucceeded(undefined, job))),
  ];
  process.stdout.write(`\n${events} credits per variant, one at a time, after ${WARMUP} warm-up credits (load average ${os.loadavg().map((n) => n.toFixed(2)).join(' ')})\n\n`);
  process.stdout.write(`${'variant'.padEnd(52)}${'wall ms'.padStart(9)}${'CPU ms'.padStart(9)}\n`);
  for (const cost of costs) process.stdout.write(`${cost.variant.padEnd(52)}${cost.wallMs.toFixed(2).padStart(9)}${cost.cpuMs.toFixed(2).padStart(9)}\n`);
} finally {
  await prisma.$disconnect();
  await pool.end();
  await db.drop();
}
