import { jobOptions, type StripeEventJob } from '@ledger/shared';
import type { Queue } from 'bullmq';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { balanceDrift, createTestDatabase, refuseLedgerInserts, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { createOrderFixture, events, jobOf } from './helpers/fixtures.js';
import { freePorts, startChild, waitUntil, type RunningProcess } from '@ledger/testkit';
import { testQueue, waitForFinished } from './helpers/queues.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';
import { startTestWorkers } from './helpers/workers.js';

const WORKER_SCRIPT = 'apps/order-worker/src/main.ts';

let db: TestDatabase;
let prefix: string;
let queue: Queue;
const processes: RunningProcess[] = [];

function startWorkerProcess(extraEnv: Record<string, string> = {}) {
  const worker = startChild({
    script: WORKER_SCRIPT,
    env: {
      LOG_LEVEL: 'info',
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
      WORKER_CONCURRENCY: '8',
      RECONCILE_INTERVAL_SECONDS: '0',
      ...extraEnv,
    },
  });
  processes.push(worker);
  return worker;
}

const add = (job: StripeEventJob, jobId = job.id) => queue.add(job.type, job, { ...jobOptions('stripeEvents', job.id, 5), jobId });

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await Promise.all(processes.splice(0).map((process) => process.stop('SIGKILL')));
  await queue?.close();
  await deleteKeysWithPrefix(prefix);
  expect(await balanceDrift(db.prisma)).toEqual([]);
});
afterAll(async () => {
  await db?.drop();
});

describe('order workers, as separate processes', () => {
  it('credit each payment once when two processes race its succeeded and checkout events', async () => {
    prefix = uniquePrefix();
    queue = testQueue(prefix);
    const metricsPorts = (await freePorts(2)).map(String);
    const workers = metricsPorts.map((port) => startWorkerProcess({ WORKER_METRICS_PORT: port }));
    await Promise.all(workers.map((worker) => worker.waitFor(/order worker started/)));

    const orders = await Promise.all(Array.from({ length: 40 }, (_, i) => createOrderFixture(db.prisma, { amount: 100 + i })));
    const jobs = orders.flatMap((order) => [jobOf(events.paymentIntent('succeeded', order)), jobOf(events.checkoutCompleted(order))]);
    await queue.addBulk(jobs.map((job) => ({ name: job.type, data: job, opts: jobOptions('stripeEvents', job.id, 5) })));

    expect(await waitForFinished(queue, jobs.length)).toEqual({ completed: jobs.length, failed: 0 });
    const credits = await db.prisma.ledgerEntry.groupBy({
      by: ['orderId'],
      where: { orderId: { in: orders.map((order) => order.id) } },
      _count: true,
    });
    expect(credits).toHaveLength(40);
    expect(credits.every((row) => row._count === 1)).toBe(true);
    const statuses = await db.prisma.order.findMany({ where: { id: { in: orders.map((order) => order.id) } }, select: { status: true } });
    expect(new Set(statuses.map((order) => order.status))).toEqual(new Set(['credited']));

    // Each process's /metrics counts what it did; together: 40 credits applied, 40 found applied.
    let scrapes: string[] = [];
    const total = (pattern: RegExp) => scrapes.reduce((sum, text) => sum + Number(pattern.exec(text)?.[1] ?? 0), 0);
    // A job's 'completed' event can trail the queue count by a moment.
    await waitUntil(
      async () => {
        scrapes = await Promise.all(metricsPorts.map(async (port) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()));
        return total(/^ledger_worker_jobs_total\{queue="stripe-events",result="completed"\} (\d+)/m) === 80;
      },
      5_000,
      'the completed counters',
    );
    expect(total(/^ledger_payment_facts_total\{kind="payment_succeeded",outcome="applied"\} (\d+)/m)).toBe(40);
    expect(total(/^ledger_payment_facts_total\{kind="payment_succeeded",outcome="already_applied"\} (\d+)/m)).toBe(40);
    expect(total(/^ledger_worker_jobs_total\{queue="stripe-events",result="completed"\} (\d+)/m)).toBe(80);
    expect(total(/^ledger_event_to_credit_seconds_count (\d+)/m)).toBe(40);
  });

  it('credit once when one event is queued 20 times under different job ids', async () => {
    prefix = uniquePrefix();
    queue = testQueue(prefix);
    const workers = [startWorkerProcess(), startWorkerProcess()];
    await Promise.all(workers.map((worker) => worker.waitFor(/order worker started/)));
    const order = await createOrderFixture(db.prisma, { amount: 5_000 });
    const job = jobOf(events.paymentIntent('succeeded', order));
    // A removed job frees its id; the ledger, not the job id, must stop the second credit.
    await Promise.all(Array.from({ length: 20 }, (_, i) => add(job, `${job.id}-copy${i}`)));
    expect(await waitForFinished(queue, 20)).toEqual({ completed: 20, failed: 0 });
    expect(await db.prisma.ledgerEntry.count({ where: { orderId: order.id } })).toBe(1);
    expect((await db.prisma.account.findUniqueOrThrow({ where: { id: order.accountId } })).balance).toBe(5_000n);
  });

  it('credit once when a stalled job is taken over while its first run is still in its transaction', async () => {
    prefix = uniquePrefix();
    queue = testQueue(prefix);
    const order = await createOrderFixture(db.prisma, { amount: 3_000 });
    const activity = new pg.Client({ connectionString: db.url });
    await activity.connect();
    const waitingOnLocks = async () =>
      Number(
        (await activity.query(`SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`, [db.name])).rows[0]
          .count,
      );

    // Hold the account row so the first worker's transaction stops after its ledger insert.
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT id FROM accounts WHERE id = $1 FOR UPDATE', [order.accountId]);

    const first = startWorkerProcess({ WORKER_LOCK_DURATION_MS: '1000' });
    await first.waitFor(/order worker started/);
    await add(jobOf(events.paymentIntent('succeeded', order)));
    await waitUntil(async () => (await waitingOnLocks()) === 1, 20_000, 'the first run to block inside its transaction');

    // Freeze it: it stops renewing its job lock, so BullMQ hands the job to another worker.
    first.child.kill('SIGSTOP');
    const second = startTestWorkers({ prisma: db.prisma, prefix, concurrency: 1, lockDurationMs: 1_000, stalledIntervalMs: 300 });
    try {
      await waitUntil(async () => (await waitingOnLocks()) === 2, 20_000, 'the second run to reach the same transaction');
      await blocker.query('COMMIT');
      first.child.kill('SIGCONT');
      await waitUntil(async () => (await queue.getJobCounts('completed')).completed === 1, 20_000, 'the job to complete');
      expect(await db.prisma.ledgerEntry.count({ where: { orderId: order.id } })).toBe(1);
      expect((await db.prisma.account.findUniqueOrThrow({ where: { id: order.accountId } })).balance).toBe(3_000n);
    } finally {
      await blocker.end();
      await activity.end();
      await second.close();
    }
  });

  it('record a payment naming an order this system does not have as not ours, without retries or a failed job', async () => {
    prefix = uniquePrefix();
    queue = testQueue(prefix);
    const worker = startWorkerProcess();
    await worker.waitFor(/order worker started/);
    const ghost = {
      id: 'ord_doesnotexist0000000000',
      accountId: 'acct_ghost',
      amount: 100,
      currency: 'usd',
      paymentIntentId: 'pi_ghost0000',
    };
    const job = jobOf(events.paymentIntent('succeeded', ghost));
    await queue.add(job.type, job, { ...jobOptions('stripeEvents', job.id, 2) });
    expect(await waitForFinished(queue, 1, 40_000)).toEqual({ completed: 1, failed: 0 });
    expect((await queue.getJob(job.id))?.attemptsMade).toBe(1);
    const inbox = await db.prisma.stripeEvent.findUniqueOrThrow({ where: { id: job.id } });
    expect(inbox).toMatchObject({ status: 'not_ours', attempts: 1 });
    expect(inbox.detail).toMatch(/ord_doesnotexist/);
    expect(await db.prisma.ledgerEntry.count({ where: { reference: ghost.paymentIntentId } })).toBe(0);
  });

  it('retry a payment PostgreSQL refuses, then fail visibly with the reason', async () => {
    prefix = uniquePrefix();
    queue = testQueue(prefix);
    const order = await createOrderFixture(db.prisma);
    const allowLedger = await refuseLedgerInserts(db.prisma);
    try {
      const worker = startWorkerProcess();
      await worker.waitFor(/order worker started/);
      const job = jobOf(events.paymentIntent('succeeded', order));
      await queue.add(job.type, job, { ...jobOptions('stripeEvents', job.id, 2) });
      expect(await waitForFinished(queue, 1, 40_000)).toEqual({ completed: 0, failed: 1 });
      const failed = (await queue.getFailed())[0]!;
      expect(failed.attemptsMade).toBe(10);
      expect(failed.failedReason).toMatch(/ledger closed by a test/);
      const inbox = await db.prisma.stripeEvent.findUniqueOrThrow({ where: { id: job.id } });
      expect(inbox).toMatchObject({ status: 'failed', attempts: 10 });
      expect(await db.prisma.ledgerEntry.count({ where: { orderId: order.id } })).toBe(0);
    } finally {
      await allowLedger();
    }
  });

  it('fail a malformed payload at once, without retries', async () => {
    prefix = uniquePrefix();
    queue = testQueue(prefix);
    const worker = startWorkerProcess();
    await worker.waitFor(/order worker started/);
    const order = await createOrderFixture(db.prisma);
    const job = jobOf(events.paymentIntent('succeeded', order));
    await queue.add(job.type, { ...job, object: { ...job.object, amount_received: -5 } }, jobOptions('stripeEvents', job.id, 2));
    expect(await waitForFinished(queue, 1)).toEqual({ completed: 0, failed: 1 });
    const failed = (await queue.getFailed())[0]!;
    expect(failed.attemptsMade).toBe(1);
    expect(failed.failedReason).toMatch(/amount_received/);
    expect(await db.prisma.ledgerEntry.count({ where: { orderId: order.id } })).toBe(0);
  });
});
