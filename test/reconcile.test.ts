import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { auditLedger } from '../apps/order-worker/src/operations/audit.js';
import { serviceAuth } from './helpers/auth.js';
import { refuseLedgerInserts } from './helpers/database.js';
import { waitUntil } from '@ledger/testkit';
import { useReconcileHarness } from './helpers/reconcile.js';
import { startTestWorkers } from './helpers/workers.js';

const h = useReconcileHarness();
const reconcile = (staleAfterSeconds = 3600) => h.reconcile({ staleAfterSeconds });

/** Creates `count` orders through the API and pays each through the emulator. */
async function payOrders(count: number) {
  const orders: { id: string; accountId: string; paymentIntentId: string; amount: number }[] = [];
  for (let i = 0; i < count; i++) {
    const accountId = `acct_${i % 10}_${randomUUID().slice(0, 6)}`;
    const response = await h.system.receiver.inject({
      method: 'POST',
      url: '/orders',
      headers: { ...serviceAuth(), 'idempotency-key': randomUUID() },
      payload: { accountId, amount: 100 + i, currency: 'usd' },
    });
    expect(response.statusCode).toBe(201);
    orders.push(response.json());
  }
  for (const order of orders)
    h.system.emulator.controller.succeedPaymentIntent(order.paymentIntentId, { checkout: order.amount % 2 === 0 });
  return orders;
}

async function creditsPerOrder(orderIds: string[]) {
  const rows = await h.db.prisma.ledgerEntry.groupBy({
    by: ['orderId'],
    where: { entryType: 'topup', orderId: { in: orderIds } },
    _count: true,
  });
  return new Map(rows.map((row) => [row.orderId, row._count]));
}

describe('reconciliation', () => {
  it('credits, exactly once, every payment whose webhooks were dropped (30%), after one run', async () => {
    await h.start({ emulator: { dropRate: 0.3, seed: 7 } });
    const orders = await payOrders(80);
    await h.system.emulator.controller.idle();
    await waitUntil(() => h.drained(), 20_000, 'queues to drain');
    const before = await creditsPerOrder(orders.map((order) => order.id));
    const missing = orders.filter((order) => !before.has(order.id));
    // The seeded drop must have hit some payments (both their events), or this test proves nothing.
    expect(missing.length).toBeGreaterThan(5);

    const report = await reconcile();
    expect(report.eventsListed).toBeGreaterThan(100); // more than one page of 100
    expect(report.eventsEnqueued).toBeGreaterThan(0);
    await waitUntil(() => h.drained(), 20_000, 'queues to drain');
    const after = await creditsPerOrder(orders.map((order) => order.id));
    expect(orders.map((order) => after.get(order.id))).toEqual(orders.map(() => 1));
    expect((await auditLedger(h.db.prisma)).problems).toEqual([]);

    // A second run finds nothing left to do.
    const again = await reconcile();
    expect(again.eventsEnqueued).toBe(0);
    expect(again.uncredited).toEqual([]);
  });

  it('never double-credits when reconciliation runs while the webhooks arrive', async () => {
    await h.start({ emulator: { delayMs: [0, 300], reorder: true, duplicateRate: 0.3, concurrency: 8, seed: 11 } });
    const orders = await payOrders(40);
    await Promise.all([reconcile(), reconcile(), h.system.emulator.controller.idle().then(() => reconcile())]);
    await h.system.emulator.controller.idle();
    await waitUntil(() => h.drained(), 20_000, 'queues to drain');
    const credits = await creditsPerOrder(orders.map((order) => order.id));
    expect(orders.map((order) => credits.get(order.id))).toEqual(orders.map(() => 1));
    expect((await auditLedger(h.db.prisma)).problems).toEqual([]);
  });

  it('reports succeeded payments that are not credited, and asks Stripe about stale orders', async () => {
    await h.start({ emulator: { dropRate: 1 }, workers: false });
    const orders = await payOrders(3);
    const report = await reconcile(0);
    expect(new Set(report.uncredited)).toEqual(new Set(orders.map((order) => order.paymentIntentId)));
    expect(report.staleOrdersChecked).toBe(3);
    const syncJobs = await h.queues.syncQueue.getJobs(['waiting', 'prioritized']);
    expect(new Set(syncJobs.map((job) => job.data.paymentIntentId))).toEqual(new Set(orders.map((order) => order.paymentIntentId)));
  });

  it('retries an event job that failed for good, which re-adding under its id could not do', async () => {
    await h.start({ emulator: { dropRate: 1 }, workers: false });
    const [order] = await payOrders(1);
    const eventId = (await h.system.stripe.events.list({ type: 'payment_intent.succeeded', limit: 1 })).data[0]!.id;
    // PostgreSQL refuses the credit for longer than the job's retries last: the job fails for good.
    const allowLedger = await refuseLedgerInserts(h.db.prisma);
    await reconcile();
    const workers = startTestWorkers({ prisma: h.db.prisma, prefix: h.system.prefix, stripe: h.system.stripe });
    try {
      // Both of the payment's events (payment_intent.succeeded, checkout.session.completed) fail.
      await waitUntil(async () => (await h.queues.eventsQueue.getFailedCount()) === 2, 20_000, 'the event jobs to fail');
      expect(await h.queues.eventsQueue.getJobState(eventId)).toBe('failed');
      await allowLedger();
      const report = await reconcile();
      expect(report.eventsEnqueued).toBe(2);
      await waitUntil(async () => (await h.queues.eventsQueue.getJobState(eventId)) === 'completed', 20_000, 'the retried job to complete');
    } finally {
      await allowLedger();
      await workers.close();
    }
    expect((await creditsPerOrder([order!.id])).get(order!.id)).toBe(1);
    expect((await reconcile()).eventsEnqueued).toBe(0);
  });

  it('resumes from its checkpoint instead of re-reading all history', async () => {
    await h.start({ workers: false });
    await payOrders(2);
    const first = await reconcile();
    expect(first.eventsListed).toBeGreaterThan(0);
    const checkpoint = await h.db.prisma.checkpoint.findUniqueOrThrow({ where: { name: 'reconcile.events.created' } });
    expect(Number(checkpoint.value)).toBe(first.checkpoint);
    expect(first.checkpoint).toBeGreaterThan(Date.now() / 1000 - 60);
  });
});
