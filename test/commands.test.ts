import { jobOptions } from '@ledger/shared';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, refuseLedgerInserts, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { createOrderFixture, events, jobOf } from './helpers/fixtures.js';
import { runCli, waitUntil, type OperatorCommand } from '@ledger/testkit';
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

/** Runs an operator command from source against this test's database and queues. */
const command = (name: OperatorCommand, ...args: string[]) =>
  runCli(name, args, {
    env: { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix, STRIPE_API_BASE: 'http://127.0.0.1:9' },
  });

describe('npm run replay', () => {
  it('applies a queued event once and reports newly, then already applied', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_234 });
    const job = jobOf(events.paymentIntent('succeeded', order));
    await queue.add(job.type, job, jobOptions('stripeEvents', job.id));

    const first = await command('replay', job.id);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`${job.id}: newly applied`);
    const second = await command('replay', job.id);
    expect(second.stdout).toContain(`${job.id}: already applied`);
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

    const replay = await command('replay', '--failed');
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain(`${job.id}: newly applied`);
    expect(replay.stdout).toContain('1 newly applied, 0 already applied, 0 held for review, 0 not ours, 0 failed');
    expect(await queue.getFailed()).toEqual([]);
    expect((await db.prisma.order.findUniqueOrThrow({ where: { id: order.id } })).status).toBe('credited');
  });

  it('refuses bad arguments with a usage line', async () => {
    const result = await command('replay', 'not-an-event');
    expect(result.code).toBe(64);
    expect(result.stderr).toContain('usage: npm run replay');
  });
});

describe('npm run audit', () => {
  it('passes on a consistent ledger and exits non-zero with a readable report on drift', async () => {
    const clean = await command('audit');
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/^OK: every balance equals the sum of its ledger/m);

    const order = await createOrderFixture(db.prisma);
    await db.prisma.$executeRaw`UPDATE accounts SET balance = balance + 5 WHERE id = ${order.accountId}`;
    await db.prisma.$executeRaw`UPDATE orders SET status = 'credited' WHERE id = ${order.id}`;
    const drift = await command('audit');
    expect(drift.code).toBe(2);
    expect(drift.stdout).toContain(`balance_drift  account ${order.accountId}: balance 5 but ledger sums to 0`);
    expect(drift.stdout).toContain(`credited_without_topup  order ${order.id}`);
    await db.prisma.$executeRaw`UPDATE accounts SET balance = balance - 5 WHERE id = ${order.accountId}`;
    await db.prisma.$executeRaw`UPDATE orders SET status = 'awaiting_payment' WHERE id = ${order.id}`;
  });

  it('reports money per currency and lists accounts in debt, which is not drift', async () => {
    // An account in its own currency whose credit was spent, then refunded at Stripe.
    const accountId = `acct_debt_${uniquePrefix()}`;
    await db.prisma.$executeRaw`INSERT INTO accounts (id, currency, balance, updated_at) VALUES (${accountId}, 'chf', -200, now())`;
    await db.prisma.$executeRaw`
      INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference)
      VALUES (${accountId}, 'topup', 500, 'chf', 'pi_debt'), (${accountId}, 'debit', -300, 'chf', 'use-1'),
             (${accountId}, 'hold_capture', -100, 'chf', 'hold_debt'), (${accountId}, 'refund', -300, 'chf', 're_debt')`;
    const audit = await command('audit');
    expect(audit.code, audit.stdout + audit.stderr).toBe(0);
    expect(audit.stdout).toContain('chf: credited 500, refunded 300, disputed 0, adjusted 0, spent 400, held 0, outstanding 0, debt 200');
    expect(audit.stdout).toMatch(/^DEBT: 1 account\(s\) below zero/m);
    expect(audit.stdout).toContain(`  ${accountId}  -200 chf`);
  });

  it('names a missing variable in one line', async () => {
    const result = await runCli('audit', [], { env: { DATABASE_URL: 'mysql://nope' } });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe('Invalid environment: DATABASE_URL must be a URL starting with postgresql:// or postgres://');
  });
});
