/**
 * Where one credit's time goes, without BullMQ: the same `payment_intent.succeeded` applied by the
 * real worker's code (in this process) and by the plain-pg baseline, one at a time and in batches
 * of 32 (group commit), with wall time and this process's CPU time per credit, next to the bare
 * PostgreSQL round trip. A profiling aid for a missed worker target, not part of `npm run bench`.
 *
 *   npx tsx bench/scenarios/credit-cost.ts         (BENCH_CREDIT_COST_EVENTS=500 per variant)
 */
import { createLogger, createPrismaClient, stripeEventJobData } from '@ledger/shared';
import os from 'node:os';
import pg from 'pg';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { paymentFactsFromEvent } from '../../apps/order-worker/src/facts/from-event.js';
import { applyPaymentFacts, createCreditBatcher } from '@ledger/ledger';
import { createWorkerMetrics } from '../../apps/order-worker/src/metrics.js';
import { processStripeEvent } from '../../apps/order-worker/src/jobs/stripe-event.js';
import { createBenchDatabase, seedOrders } from '../lib/bench-database.js';
import { loadBenchConfig } from '../lib/config.js';
import { creditPaymentsWithPg, plainPgBatcher, readPaymentCredit } from '../baselines/plain-pg-credit.js';
import { benchOrder, paymentSucceededEvent } from '../lib/stripe-events.js';

const config = loadBenchConfig([]);
const events = Number(process.env.BENCH_CREDIT_COST_EVENTS ?? 500);
/** Credits run before measuring each variant: JIT, connections and Prisma's caches warm up. */
const WARMUP = 100;

interface Cost {
  variant: string;
  wallMs: number;
  cpuMs: number;
}

/** Payments per group-commit batch in the batched variants. */
const GROUP = 32;

/**
 * Runs `credit` on `count` fresh orders of `batch`, `together` at a time (1: one after the other;
 * more: that many at once, so a batcher can group them); per-credit averages.
 */
async function measure(
  variant: string,
  batch: string,
  count: number,
  credit: (job: unknown) => Promise<unknown>,
  together = 1,
): Promise<Cost> {
  const jobs = Array.from({ length: count }, (_, index) => stripeEventJobData(paymentSucceededEvent(benchOrder(batch, index))));
  const run = async (list: unknown[]) => {
    for (let start = 0; start < list.length; start += together) await Promise.all(list.slice(start, start + together).map(credit));
  };
  await run(jobs.slice(0, WARMUP));
  const measured = jobs.slice(WARMUP);
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  await run(measured);
  const wall = performance.now() - wallBefore;
  const cpu = process.cpuUsage(cpuBefore);
  return { variant, wallMs: wall / measured.length, cpuMs: (cpu.user + cpu.system) / 1000 / measured.length };
}

const db = await createBenchDatabase(config.adminDatabaseUrl);
const prisma = createPrismaClient(db.url, { poolSize: 2, applicationName: 'bench-credit-cost' });
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
try {
  for (const batch of ['real', 'apply', 'logged', 'plain', 'rbatch', 'pbatch']) await seedOrders(db.pool, `cc${batch}`, events + WARMUP);
  const metrics = createWorkerMetrics(new Registry());
  const silent = createLogger('credit-cost', 'silent');
  // The real worker logs at info to stdout; here to /dev/null, so the cost is the formatting.
  const logged = createLogger('credit-cost', 'info', pino.destination('/dev/null'));
  // Long waits: each batch of GROUP is submitted at once and goes when full.
  const realBatcher = createCreditBatcher(prisma, { maxBatch: GROUP, maxWaitMs: 1_000 });
  const plainBatcher = plainPgBatcher(pool, { maxBatch: GROUP, maxWaitMs: 1_000 });

  const costs: Cost[] = [
    await measure('one PostgreSQL round trip (SELECT 1)', 'ccrtt', events + WARMUP, () => pool.query('SELECT 1')),
    await measure('real: processStripeEvent (zod + Prisma), no logs', 'ccreal', events + WARMUP, (job) =>
      processStripeEvent({ prisma, metrics }, job, silent),
    ),
    await measure('real: applyPaymentFacts only (Prisma, no zod)', 'ccapply', events + WARMUP, (job) => {
      const data = job as Parameters<typeof paymentFactsFromEvent>[0];
      const facts = paymentFactsFromEvent(data);
      if (!Array.isArray(facts)) throw new Error('a payment_intent.succeeded never needs a Stripe lookup');
      return applyPaymentFacts(prisma, facts, {
        id: data.id,
        type: data.type,
        objectId: String(data.object.id),
        created: data.created,
      });
    }),
    await measure('real: processStripeEvent, info logs', 'cclogged', events + WARMUP, (job) =>
      processStripeEvent({ prisma, metrics }, job, logged),
    ),
    await measure('plain pg: the same statement, one payment', 'ccplain', events + WARMUP, (job) =>
      creditPaymentsWithPg(pool, [readPaymentCredit(undefined, job)]),
    ),
    await measure(
      `real: batches of ${GROUP} (group commit, Prisma)`,
      'ccrbatch',
      events + WARMUP,
      (job) => realBatcher.credit(readPaymentCredit(undefined, job)),
      GROUP,
    ),
    await measure(
      `plain pg: batches of ${GROUP}`,
      'ccpbatch',
      events + WARMUP,
      (job) => plainBatcher.credit(readPaymentCredit(undefined, job)),
      GROUP,
    ),
  ];
  process.stdout.write(
    `\n${events} credits per variant, one at a time, after ${WARMUP} warm-up credits (load average ${os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')})\n\n`,
  );
  process.stdout.write(`${'variant'.padEnd(52)}${'wall ms'.padStart(9)}${'CPU ms'.padStart(9)}\n`);
  for (const cost of costs)
    process.stdout.write(`${cost.variant.padEnd(52)}${cost.wallMs.toFixed(2).padStart(9)}${cost.cpuMs.toFixed(2).padStart(9)}\n`);
} finally {
  await prisma.$disconnect();
  await pool.end();
  await db.drop();
}
