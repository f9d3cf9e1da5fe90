import { jobOptions } from '@ledger/shared';
import type { Queue } from 'bullmq';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { auditLedger } from '../apps/order-worker/src/operations/audit.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { createOrderFixture, events, jobOf, newOrderFixture } from './helpers/fixtures.js';
import { startChild, waitUntil, type RunningProcess } from '@ledger/testkit';
import { testQueue, waitForFinished } from './helpers/queues.js';
import { WEBHOOK_SECRETS, signatureHeader } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

let db: TestDatabase;
let queue: Queue | undefined;
let prefix: string;
const processes: RunningProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await Promise.all(processes.splice(0).map((running) => running.stop('SIGKILL')));
  await queue?.close();
  await deleteKeysWithPrefix(prefix);
});
afterAll(async () => {
  await db?.drop();
});

function start(script: string, env: Record<string, string>) {
  const running = startChild({
    script,
    env: {
      LOG_LEVEL: 'info',
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
      RECONCILE_INTERVAL_SECONDS: '0',
      ...env,
    },
  });
  processes.push(running);
  return running;
}

describe('scaling and shutdown, as separate processes', () => {
  it('three workers on a Redis-Cluster-safe prefix share the work; one stopped by SIGTERM mid-load loses nothing', async () => {
    // Braces make a hash tag: every key of the queue lands in one Redis Cluster slot.
    prefix = `{${uniquePrefix()}}`;
    queue = testQueue(prefix);
    const workers = [0, 1, 2].map(() => start('apps/order-worker/src/main.ts', { WORKER_CONCURRENCY: '4' }));
    await Promise.all(workers.map((worker) => worker.waitFor(/order worker started/)));

    const orders = await Promise.all(
      Array.from({ length: 150 }, (_, i) => createOrderFixture(db.prisma, { accountId: `acct_scale_${i % 15}`, amount: 100 + i })),
    );
    const jobs = orders.flatMap((order) => [jobOf(events.paymentIntent('succeeded', order)), jobOf(events.checkoutCompleted(order))]);
    await queue.addBulk(jobs.map((job) => ({ name: job.type, data: job, opts: jobOptions('stripeEvents', job.id, 5) })));

    await waitUntil(async () => ((await queue!.getJobCounts('completed')).completed ?? 0) >= 60, 30_000, 'a fifth of the jobs');
    const stopped = workers[0]!;
    expect(await stopped.stop('SIGTERM')).toBe(0);
    expect(stopped.lines.some((line) => line.includes('order worker stopped'))).toBe(true);

    expect(await waitForFinished(queue, jobs.length, 60_000)).toEqual({ completed: jobs.length, failed: 0 });
    const perWorker = workers.map(
      (worker) =>
        worker.lines.filter((line) => line.includes('"msg":"event applied"') || line.includes('"msg":"event already processed"')).length,
    );
    expect(perWorker.every((count) => count > 0)).toBe(true);
    expect(perWorker.reduce((sum, count) => sum + count, 0)).toBeGreaterThanOrEqual(jobs.length);
    const credits = await db.prisma.ledgerEntry.groupBy({
      by: ['orderId'],
      where: { orderId: { in: orders.map((order) => order.id) } },
      _count: true,
    });
    expect(credits.length).toBe(150);
    expect(credits.every((row) => row._count === 1)).toBe(true);
    expect((await auditLedger(db.prisma)).problems).toEqual([]);
  });

  it('a receiver stopped by SIGTERM under load never acknowledges an event it did not queue', async () => {
    prefix = uniquePrefix();
    queue = testQueue(prefix);
    // Port 0: the OS picks a free one, and the receiver says which.
    const receiver = start('apps/webhook-receiver/src/server.ts', { PORT: '0', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRETS.join(',') });
    const port = /webhook receiver listening on http:\/\/[^:]+:(\d+)/.exec(await receiver.waitFor(/webhook receiver listening on /))?.[1];
    expect(port).toMatch(/^\d+$/);

    const results: { eventId: string; status: number | 'network_error' }[] = [];
    let sent = 0;
    const total = 600;
    const sender = async () => {
      while (sent < total) {
        const stripeEvent = events.paymentIntent('succeeded', newOrderFixture());
        sent += 1;
        const payload = JSON.stringify(stripeEvent);
        try {
          const response = await fetch(`http://127.0.0.1:${port}/webhooks/stripe`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'stripe-signature': signatureHeader(payload) },
            body: payload,
          });
          await response.arrayBuffer();
          results.push({ eventId: stripeEvent.id, status: response.status });
        } catch {
          results.push({ eventId: stripeEvent.id, status: 'network_error' });
        }
      }
    };
    const load = Promise.all(Array.from({ length: 16 }, sender));
    await waitUntil(async () => results.length >= 150, 30_000, 'load to build up');
    const exit = receiver.stop('SIGTERM');
    await load;
    expect(await exit).toBe(0);

    const acknowledged = results.filter((result) => result.status === 200);
    expect(acknowledged.length).toBeGreaterThanOrEqual(150);
    expect(results.length).toBe(total);
    // Every 2xx is a durably queued job; everything else was answered so that Stripe retries.
    const missing = [];
    for (const result of acknowledged) if (!(await queue.getJob(result.eventId))) missing.push(result.eventId);
    expect(missing).toEqual([]);
    expect(results.every((result) => result.status === 200 || result.status === 503 || result.status === 'network_error')).toBe(true);
  });
});
