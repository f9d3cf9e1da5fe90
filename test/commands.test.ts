import { spawnSync } from 'node:child_process';
import { jobOptions } from '@ledger/shared';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, refuseLedgerInserts, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { createOrderFixture, events, jobOf } from './helpers/fixtures.js';
import { waitUntil } from '@ledger/testkit';
import { testQueue } from './helpers/queues.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';
import { startTestWorkers } from './helpers/workers.js';

let db: TestDatabase;
let queue: Queue;
const prefix = uniquePrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  queue = testQueue(prefix);
});
afterAll(async () => {
  await queue?.close();
  await deleteKeysWithPrefix(prefix);
  await db?.drop();
});

/** Runs an operator command the way `npm run <name>` does, against this test's database and queues. */
function command(script: 'replay' | 'audit' | 'reconcile', ...args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', `apps/order-worker/src/cli/${script}.ts`, ...args], {
    env: { ...process.env, DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix, STRIPE_API_BASE: 'http://127.0.0.1:9' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, out: result.stdout, err: result.stderr };
}

describe('npm run replay', () => {
  it('applies a queued event once and reports newly, then already applied', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_234 });
    const job = jobOf(events.paymentIntent('succeeded', order));
    await queue.add(job.type, job, jobOptions('stripeEvents', job.id));

    const first = command('replay', job.id);
    expect(first.code, first.err).toBe(0);
    expect(first.out).toContain(`${job.id}: newly applied`);
    const second = command('replay', job.id);
    expect(second.out).toContain(`${job.id}: already applied`);
    expect(await db.prisma.ledgerEntry.count({ where: { orderId: order.id } })).toBe(1);
  });

  it('replays failed jobs with --failed once their cause is fixed', async () => {
    // PostgreSQL refuses the credit while the event's job runs: it fails for good after its retries.
    const order = await createOrderFixture(db.prisma, { amount: 4_321 });
    const job = jobOf(events.paymentIntent('succeeded', order));
    const allowLedger = await refuseLedgerInserts(db.prisma);
    await queue.add(job.type, job, jobOptions('stripeEvents', job.id, 1));
    const workers = startTestWorkers({ prisma: db.prisma, prefix, concurrency: 1 });
    try {
      await waitUntil(async () => (await queue.getJobState(job.id)) === 'failed', 30_000, 'the job to fail for good');
    } finally {
      await workers.close();
      await allowLedger();
    }
    expect((await queue.getFailed()).map((failed) => failed.id)).toEqual([job.id]);

    const replay = command('replay', '--failed');
    expect(replay.code, replay.err).toBe(0);
    expect(replay.out).toContain(`${job.id}: newly applied`);
    expect(replay.out).toContain('1 newly applied, 0 already applied, 0 held for review, 0 not ours, 0 failed');
    expect(await queue.getFailed()).toEqual([]);
    expect((await db.prisma.order.findUniqueOrThrow({ where: { id: order.id } })).status).toBe('credited');
  });

  it('refuses bad arguments with a usage line', () => {
    const result = command('replay', 'not-an-event');
    expect(result.code).toBe(64);
    expect(result.err).toContain('usage: npm run replay');
  });
});

describe('npm run audit', () => {
  it('passes on a consistent ledger and exits non-zero with a readable report on drift', async () => {
    const clean = command('audit');
    expect(clean.code, clean.out + clean.err).toBe(0);
    expect(clean.out).toMatch(/^OK: every balance equals the sum of its ledger/m);

    const order = await createOrderFixture(db.prisma);
    await db.prisma.$executeRaw`UPDATE accounts SET balance = balance + 5 WHERE id = ${order.accountId}`;
    await db.prisma.$executeRaw`UPDATE orders SET status = 'credited' WHERE id = ${order.id}`;
    const drift = command('audit');
    expect(drift.code).toBe(2);
    expect(drift.out).toContain(`balance_drift  account ${order.accountId}: balance 5 but ledger sums to 0`);
    expect(drift.out).toContain(`credited_without_topup  order ${order.id}`);
    await db.prisma.$executeRaw`UPDATE accounts SET balance = balance - 5 WHERE id = ${order.accountId}`;
    await db.prisma.$executeRaw`UPDATE orders SET status = 'awaiting_payment' WHERE id = ${order.id}`;
  });

  it('names a missing variable in one line', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'apps/order-worker/src/cli/audit.ts'], {
      env: { ...process.env, DATABASE_URL: 'mysql://nope' },
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe('Invalid environment: DATABASE_URL must be a URL starting with postgresql:// or postgres://');
  });
});
