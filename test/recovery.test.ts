import { HANDLED_EVENT_TYPES } from '@ledger/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { auditLedger } from '../apps/order-worker/src/operations/audit.js';
import { waitUntil } from '@ledger/testkit';
import { useReconcileHarness } from './helpers/reconcile.js';
import { deleteKeysWithPrefix } from './helpers/redis.js';
import { startTestWorkers } from './helpers/workers.js';

// Reconciliation as the safety net behind Redis: what Redis forgets after Stripe got its 2xx is
// found again, unpaid orders are looked at with a growing back-off and end at ORDER_TTL, and the
// summary says what really happened. Real emulator, receiver, Redis and PostgreSQL.
const h = useReconcileHarness();

async function statuses(orderIds: string[]) {
  const rows = await h.db.prisma.order.findMany({ where: { id: { in: orderIds } }, select: { id: true, status: true } });
  return new Map(rows.map((row) => [row.id, row.status]));
}

/** An order's story as this system and Stripe saw it: the context of a failed assertion. */
async function describeOrder(order: { id: string; paymentIntentId: string }, plan: unknown): Promise<string> {
  const stripeEvents = (await h.system.stripe.events.list({ limit: 100 })).data
    .filter((event) => JSON.stringify(event.data.object).includes(order.paymentIntentId))
    .map((event) => ({ id: event.id, type: event.type, created: event.created }));
  const inbox = await h.db.prisma.stripeEvent.findMany({
    where: { id: { in: stripeEvents.map((event) => event.id) } },
    select: { id: true, type: true, status: true, attempts: true, detail: true, lastError: true },
  });
  const held = await h.db.prisma.heldFact.findMany({ where: { orderId: order.id } });
  const row = await h.db.prisma.order.findUnique({ where: { id: order.id } });
  const jobs = await Promise.all(
    stripeEvents.map(async (event) => {
      const job = await h.queues.eventsQueue.getJob(event.id);
      return { id: event.id, state: job ? await job.getState() : 'none', attemptsMade: job?.attemptsMade, failedReason: job?.failedReason };
    }),
  );
  return JSON.stringify({ order: row, plan, stripeEvents, inbox, jobs, held }, (_key, value) =>
    typeof value === 'bigint' ? String(value) : value,
  );
}

describe('when Redis loses what it acknowledged', () => {
  it('a later pass applies every acknowledged event, because the checkpoint never passes an event the inbox lacks', async () => {
    // Every webhook is acknowledged (queued), but no worker runs yet. The payments happen in an
    // earlier second than the refund, so a checkpoint at the newest event would pass them.
    await h.start({ workers: false });
    const orders = await h.createOrders(6);
    for (const order of orders) h.system.emulator.controller.succeedPaymentIntent(order.paymentIntentId);
    const paidSecond = Math.floor(Date.now() / 1000);
    await waitUntil(async () => Math.floor(Date.now() / 1000) > paidSecond, 3_000, 'the next second');
    const refundable = orders[0]!;
    h.system.emulator.controller.refundPaymentIntent(refundable.paymentIntentId, { amount: 100 });
    await h.system.emulator.controller.idle();
    expect(await h.queues.eventsQueue.getWaitingCount()).toBeGreaterThanOrEqual(7);

    // A pass sees them all still queued: it queues nothing and keeps its checkpoint behind them.
    // No overlap: the checkpoint alone decides what the next pass lists.
    const first = await h.reconcile({ overlapSeconds: 0 });
    expect(first.eventsEnqueued).toBe(0);
    expect(first.eventsInFlight).toBeGreaterThanOrEqual(7);
    const oldest = Math.min(
      ...(await h.system.stripe.events.list({ limit: 100, types: [...HANDLED_EVENT_TYPES] })).data.map((event) => event.created),
    );
    expect(first.checkpoint).toBeLessThanOrEqual(oldest);

    // Redis forgets everything (a failover to a replica that missed the writes, a flush).
    await deleteKeysWithPrefix(h.system.prefix);
    const workers = startTestWorkers({ prisma: h.db.prisma, prefix: h.system.prefix, stripe: h.system.stripe });
    try {
      const second = await h.reconcile({ overlapSeconds: 0 });
      expect(second.eventsEnqueued).toBeGreaterThanOrEqual(7);
      await waitUntil(() => h.drained(), 20_000, 'the queues to drain');
    } finally {
      await workers.close();
    }
    const after = await statuses(orders.map((order) => order.id));
    expect(orders.map((order) => after.get(order.id))).toEqual(
      orders.map((order) => (order === refundable ? 'partially_refunded' : 'credited')),
    );
    expect(await h.db.prisma.ledgerEntry.count({ where: { entryType: 'refund' } })).toBe(1);
    expect((await auditLedger(h.db.prisma)).problems).toEqual([]);
    // With everything in the inbox, the checkpoint moves up to the newest event.
    const third = await h.reconcile();
    expect(third.eventsEnqueued).toBe(0);
    expect(third.checkpoint).toBeGreaterThanOrEqual(first.checkpoint);
    expect(third.uncredited).toEqual([]);
  });
});

describe('a property: Redis loses every queued job at a random moment', () => {
  it('then reconciliation brings the ledger to exactly what Stripe did', { timeout: 240_000 }, async () => {
    // A flush can take a running job's lock and leave its id in the active list: BullMQ's stalled
    // check puts it back after up to two intervals (2 × 30 s by default), shortened here.
    await h.start({
      emulator: { duplicateRate: 0.2, delayMs: [0, 40], concurrency: 4, seed: 5 },
      workers: { lockDurationMs: 2_000, stalledIntervalMs: 1_000 },
    });
    expect(h.system.workers).toBeDefined();
    const plan = fc.record({
      payments: fc.array(
        fc.record({
          refund: fc.option(fc.record({ amount: fc.integer({ min: 1, max: 500 }), fails: fc.boolean() }), { nil: undefined }),
          dispute: fc.boolean(),
        }),
        { minLength: 2, maxLength: 5 },
      ),
      flushAfter: fc.nat({ max: 12 }),
    });
    await fc.assert(
      fc.asyncProperty(plan, async ({ payments, flushAfter }) => {
        const orders = await h.createOrders(payments.length, 600);
        const expected = new Map<string, string[]>();
        const actions: (() => void)[] = [];
        orders.forEach((order, index) => {
          const payment = payments[index]!;
          const entries = [`topup:${order.amount}`];
          actions.push(() => h.system.emulator.controller.succeedPaymentIntent(order.paymentIntentId));
          if (payment.refund) {
            const { amount, fails } = payment.refund;
            actions.push(() => {
              const { refund } = h.system.emulator.controller.refundPaymentIntent(order.paymentIntentId, { amount });
              if (fails) h.system.emulator.controller.failRefund(refund!.id);
            });
            entries.push(`refund:${-amount}`, ...(fails ? [`refund_reversal:${amount}`] : []));
          }
          if (payment.dispute) {
            actions.push(() => {
              const { dispute } = h.system.emulator.controller.disputePaymentIntent(order.paymentIntentId, { amount: 50 });
              h.system.emulator.controller.closeDispute(dispute!.id, { status: 'lost' });
            });
            entries.push('dispute:-50');
          }
          expected.set(order.id, entries.sort());
        });
        // Each order's actions keep their order (pay before refund); Redis forgets everything
        // (a flush, not a restart) after `flushAfter` of them, wherever the deliveries then are.
        actions.forEach((action, index) => {
          if (index === flushAfter) void deleteKeysWithPrefix(h.system.prefix);
          action();
        });
        if (flushAfter >= actions.length) await deleteKeysWithPrefix(h.system.prefix);
        await h.system.emulator.controller.idle();
        await waitUntil(() => h.drained(), 20_000, 'the queues to drain');
        for (let pass = 0; pass < 5 && (await h.reconcile()).eventsEnqueued > 0; pass++)
          await waitUntil(() => h.drained(), 20_000, 'the reconciled jobs');

        const ledger = await h.db.prisma.ledgerEntry.findMany({ where: { orderId: { in: orders.map((order) => order.id) } } });
        for (const order of orders) {
          const entries = ledger.filter((entry) => entry.orderId === order.id).map((entry) => `${entry.entryType}:${entry.amount}`);
          // On a mismatch, what the inbox, the held facts and Stripe say of this order's payment.
          const context =
            JSON.stringify(entries.sort()) === JSON.stringify(expected.get(order.id))
              ? order.id
              : await describeOrder(order, { payments, flushAfter });
          expect(entries.sort(), context).toEqual(expected.get(order.id));
        }
        expect((await auditLedger(h.db.prisma)).problems).toEqual([]);
      }),
      { numRuns: 4, seed: 1130 },
    );
  });
});

describe('unpaid orders', () => {
  it('are checked with a growing back-off, so abandoned orders cannot hide newer ones', async () => {
    await h.start({ workers: false });
    const orders = await h.createOrders(3);
    // One pass looks at two orders at most: the third is looked at by the next pass, not starved.
    const first = await h.reconcile({ staleAfterSeconds: 0, orderBatchSize: 2 });
    const second = await h.reconcile({ staleAfterSeconds: 0, orderBatchSize: 2 });
    expect(first.staleOrdersChecked).toBe(2);
    expect(second.staleOrdersChecked).toBe(1);
    const rows = await h.db.prisma.order.findMany({ where: { id: { in: orders.map((order) => order.id) } } });
    expect(rows.map((row) => row.checks)).toEqual([1, 1, 1]);
    // Each waits before its next look, and the wait doubles with every look.
    await h.db.prisma.$executeRaw`UPDATE orders SET next_check_at = now() - interval '1 second'`;
    await h.reconcile({ staleAfterSeconds: 10 });
    const later = await h.db.prisma.order.findMany({ where: { id: { in: orders.map((order) => order.id) } } });
    for (const row of later) {
      expect(row.checks).toBe(2);
      const wait = (row.nextCheckAt!.getTime() - Date.now()) / 1000;
      expect(wait).toBeGreaterThan(15);
      expect(wait).toBeLessThanOrEqual(20);
    }
  });

  it('end at ORDER_TTL: the PaymentIntent is canceled at Stripe, unless it was paid, which is credited', async () => {
    await h.start({});
    const [abandoned, paidLate, processing] = await h.createOrders(3);
    // Paid at Stripe, but its webhooks never arrived.
    h.system.emulator.controller.configure({ dropRate: 1 });
    h.system.emulator.controller.succeedPaymentIntent(paidLate!.paymentIntentId);
    h.system.emulator.controller.markPaymentIntentProcessing(processing!.paymentIntentId);
    await h.db.prisma.$executeRaw`UPDATE orders SET created_at = now() - interval '2 days'`;

    // A pass skips an order a worker holds at that moment (SKIP LOCKED); the next one takes it.
    // The late payment may be credited first by the events a pass queues before it looks at orders.
    // A payment on its way cannot be canceled: that order waits for it.
    const expected = new Map([
      [abandoned!.id, 'expired'],
      [paidLate!.id, 'credited'],
      [processing!.id, 'processing'],
    ]);
    let expiring = 0;
    let after = new Map<string, string>();
    for (let pass = 0; pass < 5 && [...expected].some(([id, status]) => after.get(id) !== status); pass += 1) {
      expiring += (await h.reconcile({ orderTtlSeconds: 24 * 3600 })).ordersExpiring;
      await waitUntil(() => h.drained(), 20_000, 'the expiry jobs');
      after = await statuses([...expected.keys()]);
    }
    expect(after).toEqual(expected);
    expect(expiring).toBeGreaterThanOrEqual(2);
    expect((await h.system.stripe.paymentIntents.retrieve(abandoned!.paymentIntentId)).status).toBe('canceled');
    expect((await h.system.stripe.paymentIntents.retrieve(paidLate!.paymentIntentId)).status).toBe('succeeded');
  });

  it('without a PaymentIntent end at ORDER_TTL without calling Stripe', async () => {
    await h.start({ workers: false });
    const [order] = await h.createOrders(1);
    await h.db.prisma
      .$executeRaw`UPDATE orders SET payment_intent_id = NULL, created_at = now() - interval '2 days' WHERE id = ${order!.id}`;
    const report = await h.reconcile({ orderTtlSeconds: 3600 });
    expect(report).toMatchObject({ ordersExpired: 1, ordersExpiring: 0 });
    expect((await statuses([order!.id])).get(order!.id)).toBe('expired');
  });
});

describe('the reconciliation summary', () => {
  it('says which succeeded payments are held for review and which are not ours, and queues neither again', async () => {
    await h.start({});
    const [order] = await h.createOrders(1, 1_000);
    // Paid a different amount than the order (held), and a PaymentIntent of another integration.
    h.system.emulator.controller.succeedPaymentIntent(order!.paymentIntentId, { amount_received: 999 });
    const foreign = await h.system.stripe.paymentIntents.create({
      amount: 700,
      currency: 'usd',
      metadata: { shop: 'another-integration' },
    });
    h.system.emulator.controller.succeedPaymentIntent(foreign.id);
    await h.system.emulator.controller.idle();
    await waitUntil(() => h.drained(), 20_000, 'the queues to drain');

    const report = await h.reconcile();
    expect(report.payments).toMatchObject({ credited: 0, held: [order!.paymentIntentId], notOurs: 1, uncredited: [] });
    expect(report.eventsEnqueued).toBe(0);
    expect(await h.queues.eventsQueue.getFailedCount()).toBe(0);
    expect((await statuses([order!.id])).get(order!.id)).toBe('needs_review');
  });
});
