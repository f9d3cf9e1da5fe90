import { randomUUID } from 'node:crypto';
import { createWorkerConnection, QUEUES, Stripe } from '@ledger/shared';
import { closeAll, waitUntil } from '@ledger/testkit';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkerMetrics } from '../apps/order-worker/src/metrics.js';
import { startReconciler } from '../apps/order-worker/src/operations/reconcile-worker.js';
import { serviceAuth } from './helpers/auth.js';
import { balanceDrift, createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { testQueue } from './helpers/queues.js';
import { useReconcileHarness } from './helpers/reconcile.js';
import { WEBHOOK_SECRETS } from './helpers/receiver.js';
import { startTestSystem, type TestSystem } from './helpers/system.js';

// Stripe as it really is, end to end (emulator → receiver → queue → worker → PostgreSQL): webhooks
// rendered at their endpoint's API version, events listed at the version each was created with.
// https://docs.stripe.com/upgrades, https://docs.stripe.com/changelog/2022-11-15
const OLD = '2022-08-01';
const VERSIONS = [Stripe.API_VERSION, OLD];

async function createOrder(system: TestSystem, amount: number) {
  const response = await system.receiver.inject({
    method: 'POST',
    url: '/orders',
    headers: { ...serviceAuth(), 'idempotency-key': randomUUID() },
    payload: { accountId: `acct_${randomUUID().slice(0, 8)}`, amount, currency: 'usd' },
  });
  expect(response.statusCode).toBe(201);
  return response.json() as { id: string; accountId: string; paymentIntentId: string };
}

async function entriesOf(db: TestDatabase, accountId: string) {
  const rows = await db.prisma.ledgerEntry.findMany({ where: { accountId }, orderBy: { id: 'asc' } });
  return rows.map((entry) => `${entry.entryType}:${entry.amount}`).sort();
}

async function balanceOf(db: TestDatabase, accountId: string) {
  return Number((await db.prisma.account.findUniqueOrThrow({ where: { id: accountId } })).balance);
}

/** Waits until the account's ledger is `expected` (sorted `type:amount`), then a little longer for any extra. */
async function expectLedger(db: TestDatabase, accountId: string, expected: string[]) {
  const sorted = [...expected].sort();
  await waitUntil(
    async () => JSON.stringify(await entriesOf(db, accountId)) === JSON.stringify(sorted),
    20_000,
    `ledger ${sorted.join(', ')}`,
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(await entriesOf(db, accountId)).toEqual(sorted);
}

describe.each(VERSIONS)('an endpoint at API version %s', (version) => {
  let db: TestDatabase;
  let system: TestSystem;
  beforeEach(async () => {
    db = await createTestDatabase();
    // Subscribed as several peers do: the payment, charge.refunded only for refunds, the disputes.
    system = await startTestSystem(db, {
      emulator: {
        apiVersion: version,
        enabledEvents: ['payment_intent.succeeded', 'charge.refunded', 'charge.dispute.*', 'payment_intent.partially_funded'],
      },
    });
  });
  afterEach(async () => {
    expect(await balanceDrift(db.prisma)).toEqual([]);
    await closeAll('closing the versions test', [() => system?.close(), () => db?.drop()]);
  });

  it('debits every refund charge.refunded reports, listed in the event or not (12 refunds: more than an old list shows)', async () => {
    const order = await createOrder(system, 1_200);
    const { controller } = system.emulator;
    controller.succeedPaymentIntent(order.paymentIntentId);
    await expectLedger(db, order.accountId, ['topup:1200']);
    for (let i = 0; i < 12; i++) controller.refundPaymentIntent(order.paymentIntentId, { amount: 50 });
    await expectLedger(db, order.accountId, ['topup:1200', ...Array.from({ length: 12 }, () => 'refund:-50')]);
    expect(await balanceOf(db, order.accountId)).toBe(600);
  });

  it("follows a dispute's funds: for part of the charge, withdrawn, reinstated when won; an escalated inquiry lost debits once", async () => {
    const { controller } = system.emulator;
    const won = await createOrder(system, 1_000);
    controller.succeedPaymentIntent(won.paymentIntentId);
    await expectLedger(db, won.accountId, ['topup:1000']);
    const dispute = controller.disputePaymentIntent(won.paymentIntentId, { amount: 400 }).dispute!;
    await expectLedger(db, won.accountId, ['topup:1000', 'dispute:-400']);
    controller.closeDispute(dispute.id, { status: 'won' });
    await expectLedger(db, won.accountId, ['topup:1000', 'dispute:-400', 'dispute_reversal:400']);
    expect(await balanceOf(db, won.accountId)).toBe(1_000);

    const inquiry = await createOrder(system, 700);
    controller.succeedPaymentIntent(inquiry.paymentIntentId);
    await expectLedger(db, inquiry.accountId, ['topup:700']);
    const opened = controller.disputePaymentIntent(inquiry.paymentIntentId, { inquiry: true }).dispute!;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await entriesOf(db, inquiry.accountId)).toEqual(['topup:700']);
    controller.escalateDispute(opened.id);
    await expectLedger(db, inquiry.accountId, ['topup:700', 'dispute:-700']);
    controller.closeDispute(opened.id, { status: 'lost' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await entriesOf(db, inquiry.accountId)).toEqual(['dispute:-700', 'topup:700']);
  });

  it('credits an Adaptive Pricing payment in what its PaymentIntent says, and holds it when that is not the order currency', async () => {
    const { controller } = system.emulator;
    const order = await createOrder(system, 1_000);
    // The customer paid 920 EUR for a 1,000 USD order: the PaymentIntent is in EUR.
    controller.succeedPaymentIntent(order.paymentIntentId, { checkout: true, presentment: { currency: 'eur', amount: 920 } });
    await waitUntil(
      async () => (await db.prisma.order.findUniqueOrThrow({ where: { id: order.id } })).status === 'needs_review',
      20_000,
      'the converted payment to be held',
    );
    expect(await entriesOf(db, order.accountId)).toEqual([]);
  });

  it('never credits a partially funded bank transfer', async () => {
    const order = await createOrder(system, 1_000);
    system.emulator.controller.partiallyFundPaymentIntent(order.paymentIntentId, { amount: 400 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await entriesOf(db, order.accountId)).toEqual([]);
    expect((await db.prisma.order.findUniqueOrThrow({ where: { id: order.id } })).status).toBe('awaiting_payment');
  });
});

describe('asking Stripe while it answers 429', () => {
  let db: TestDatabase;
  let system: TestSystem;
  afterEach(async () => {
    await closeAll('closing the 429 test', [() => system?.close(), () => db?.drop()]);
  });

  it('a charge.refunded that must list its refunds waits out the 429s and is applied, without failing or using attempts', async () => {
    db = await createTestDatabase();
    system = await startTestSystem(db, { emulator: { enabledEvents: ['payment_intent.succeeded', 'charge.refunded'] } });
    const order = await createOrder(system, 900);
    const { controller } = system.emulator;
    controller.succeedPaymentIntent(order.paymentIntentId);
    await expectLedger(db, order.accountId, ['topup:900']);
    const address = system.emulator.app.server.address();
    const emulatorUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const faults = await fetch(`${emulatorUrl}/_emulator/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiFaults: { status: 429, count: 3, path: '/v1/refunds' } }),
    });
    expect(faults.status).toBe(200);
    controller.refundPaymentIntent(order.paymentIntentId, { amount: 250 });
    await expectLedger(db, order.accountId, ['topup:900', 'refund:-250']);
    const served = (await (await fetch(`${emulatorUrl}/_emulator/stats`)).json()) as { apiFaults: { served: number } };
    expect(served.apiFaults.served).toBe(3);
    const queue = testQueue(system.prefix, QUEUES.stripeEvents);
    try {
      expect(await queue.getFailedCount()).toBe(0);
      // Waited out, not retried: the 429s used none of the job's attempts (the one made is the run that completed).
      const [refunded] = (await system.stripe.events.list({ types: ['charge.refunded'], limit: 1 })).data;
      const job = await queue.getJob(refunded!.id);
      expect(await job?.getState()).toBe('completed');
      expect(job?.attemptsMade).toBe(1);
    } finally {
      await queue.close();
    }
  });
});

describe("upgrading the endpoint's version: Stripe's recipe (https://docs.stripe.com/webhooks/versioning)", () => {
  let db: TestDatabase;
  let system: TestSystem;
  afterEach(async () => {
    expect(await balanceDrift(db.prisma)).toEqual([]);
    await closeAll('closing the upgrade test', [() => system?.close(), () => db?.drop()]);
  });

  it('two endpoints at two versions, two secrets: every event arrives twice in two shapes and moves money once', async () => {
    db = await createTestDatabase();
    system = await startTestSystem(db, {
      emulator: { apiVersion: OLD, webhookApiVersion: OLD, enabledEvents: ['charge.*', 'payment_intent.*'], duplicateRate: 0.3, seed: 7 },
    });
    // The new endpoint beside the old one, signed with its own secret (both in STRIPE_WEBHOOK_SECRET).
    system.emulator.controller.configure({
      endpoints: [
        {
          url: `${system.receiverUrl}/webhooks/stripe`,
          secret: WEBHOOK_SECRETS[1]!,
          apiVersion: Stripe.API_VERSION,
          enabledEvents: ['charge.*', 'payment_intent.*'],
        },
      ],
    });
    const { controller } = system.emulator;
    const orders = await Promise.all(Array.from({ length: 5 }, (_, i) => createOrder(system, 1_000 + i)));
    for (const order of orders) {
      controller.succeedPaymentIntent(order.paymentIntentId);
      controller.refundPaymentIntent(order.paymentIntentId, { amount: 100 });
      controller.refundPaymentIntent(order.paymentIntentId, { amount: 50 });
      const dispute = controller.disputePaymentIntent(order.paymentIntentId, { amount: 300 }).dispute!;
      controller.closeDispute(dispute.id, { status: 'won' });
    }
    await Promise.all(
      orders.map((order, i) =>
        expectLedger(db, order.accountId, [`topup:${1_000 + i}`, 'refund:-100', 'refund:-50', 'dispute:-300', 'dispute_reversal:300']),
      ),
    );
    await waitUntil(async () => controller.stats().deliveries.pending === 0, 20_000, 'every delivery to be acknowledged');
    const stats = controller.stats();
    expect(stats.endpoints.we_0?.succeeded).toBeGreaterThan(0);
    expect(stats.endpoints.we_1?.succeeded).toBeGreaterThan(0);
    const metrics = (await system.receiver.inject({ method: 'GET', url: '/metrics' })).body;
    const duplicates = Number(/^ledger_webhooks_duplicate_total (\d+)/m.exec(metrics)?.[1] ?? 0);
    // Each handled event came through both endpoints: one copy queued, the other answered duplicate.
    expect(duplicates).toBeGreaterThanOrEqual(5 * 4);
  });
});

describe('reconciliation after an upgrade', () => {
  const harness = useReconcileHarness();

  it('lists events at the versions they were created with and applies both shapes in one pass', async () => {
    // No deliveries at all: only reconciliation brings the events in.
    await harness.start({ emulator: { apiVersion: OLD } });
    const { controller } = harness.system.emulator;
    controller.configure({ webhookUrl: null });
    const [before, after] = await harness.createOrders(2, 800);
    controller.succeedPaymentIntent(before!.paymentIntentId);
    controller.refundPaymentIntent(before!.paymentIntentId, { amount: 200 });
    controller.configure({ apiVersion: Stripe.API_VERSION });
    controller.succeedPaymentIntent(after!.paymentIntentId);
    controller.refundPaymentIntent(after!.paymentIntentId, { amount: 300 });

    const listed = await harness.system.stripe.events.list({ limit: 100, types: ['charge.refunded'] });
    expect(new Set(listed.data.map((event) => event.api_version))).toEqual(new Set([OLD, Stripe.API_VERSION]));

    const report = await harness.reconcile();
    expect(report.eventsEnqueued).toBeGreaterThan(0);
    await waitUntil(() => harness.drained(), 20_000, 'the queued events to be applied');
    await expectLedger(harness.db, before!.accountId, ['topup:800', 'refund:-200']);
    await expectLedger(harness.db, after!.accountId, ['topup:801', 'refund:-300']);
  });
});

describe('an event generation failure (https://docs.stripe.com/webhooks/handle-irrecoverable-events)', () => {
  let db: TestDatabase;
  let system: TestSystem;
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await closeAll('closing the recovery test', [...cleanups.splice(0).reverse(), () => system?.close(), () => db?.drop()]);
  });

  it('once resolved, syncs the PaymentIntent it names: a payment whose event was never generated is credited', async () => {
    db = await createTestDatabase();
    // The endpoint hears thin events only: payment_intent.succeeded "was never generated".
    system = await startTestSystem(db, { emulator: { enabledEvents: ['v2.*'] } });
    const connection = createWorkerConnection(TEST_REDIS_URL);
    cleanups.push(async () => connection.disconnect());
    const reconciler = await startReconciler({
      prisma: db.prisma,
      stripe: system.stripe,
      connection,
      prefix: system.prefix,
      metrics: createWorkerMetrics(new Registry()),
      logger: pino({ level: 'silent' }),
      // No schedules from this process: the recovery job alone runs.
      intervalSeconds: 0,
      holdExpirySeconds: 0,
      inboxRetentionDays: 35,
      options: { staleAfterSeconds: 3600, maxRequestsPerSecond: 100, jobBackoffMs: 5 },
    });
    cleanups.push(() => reconciler.close());

    const order = await createOrder(system, 1_500);
    const { controller } = system.emulator;
    controller.succeedPaymentIntent(order.paymentIntentId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await entriesOf(db, order.accountId)).toEqual([]);

    controller.createThinEvent({
      type: 'v2.core.health.event_generation_failure.resolved',
      data: {
        resolved_at: new Date().toISOString(),
        impact: {
          event_type: 'payment_intent.succeeded',
          related_object: { id: order.paymentIntentId, type: 'payment_intent', url: `/v1/payment_intents/${order.paymentIntentId}` },
        },
      },
    });
    await expectLedger(db, order.accountId, ['topup:1500']);
  });
});
