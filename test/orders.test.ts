import { randomUUID } from 'node:crypto';
import { createStripeClient, paymentSyncJobId, QUEUES } from '@ledger/shared';
import type { Job, Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serviceAuth } from './helpers/auth.js';
import { balanceDrift, createTestDatabase, type TestDatabase } from './helpers/database.js';
import { testQueue } from './helpers/queues.js';
import { waitUntil } from '@ledger/testkit';
import { buildTestReceiver } from './helpers/receiver.js';
import { startTestSystem, type TestSystem } from './helpers/system.js';

let db: TestDatabase;
let system: TestSystem;

beforeAll(async () => {
  db = await createTestDatabase();
  system = await startTestSystem(db);
});

const asService = serviceAuth();
afterEach(async () => {
  expect(await balanceDrift(db.prisma)).toEqual([]);
});
afterAll(async () => {
  await system?.close();
  await db?.drop();
});

const account = () => `acct_${randomUUID().slice(0, 8)}`;

/** `key: null` sends no Idempotency-Key. */
function createOrder(body: unknown, key: string | null = randomUUID(), app = system.receiver) {
  return app.inject({
    method: 'POST',
    url: '/orders',
    headers: key === null ? asService : { ...asService, 'idempotency-key': key },
    payload: body as object,
  });
}

/**
 * Waits until the system has nothing left to do: no webhook the emulator still has to deliver and
 * no event or sync job waiting, delayed or running. Only then does "nothing more happened" mean
 * anything: every delivery and check that could have credited twice had its chance.
 */
async function waitForQuiet() {
  await system.emulator.controller.idle();
  const queues: Queue[] = [QUEUES.stripeEvents, QUEUES.paymentSync].map((name) => testQueue(system.prefix, name));
  try {
    await waitUntil(
      async () => {
        const counts = await Promise.all(
          queues.map((queue) => queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')),
        );
        return counts.every((count) => Object.values(count).every((n) => n === 0));
      },
      15_000,
      'the event and sync queues to drain',
    );
  } finally {
    await Promise.all(queues.map((queue) => queue.close()));
  }
}

/**
 * Waits until the payment-sync job a confirm queued between `from` and `to` (ms) for this
 * PaymentIntent has completed, and returns what it applied.
 */
async function syncResult(paymentIntentId: string, from: number, to: number) {
  const queue = testQueue(system.prefix, QUEUES.paymentSync);
  // The job id carries a time window; the confirm may have fallen on either side of a boundary.
  const jobIds = [...new Set([paymentSyncJobId(paymentIntentId, from), paymentSyncJobId(paymentIntentId, to)])];
  try {
    let completed: Job | undefined;
    await waitUntil(
      async () => {
        for (const job of await Promise.all(jobIds.map((id) => queue.getJob(id)))) {
          if (!job) continue;
          const state = await job.getState();
          if (state === 'failed') throw new Error(`sync job ${job.id} failed: ${job.failedReason}`);
          if (state === 'completed') completed = await queue.getJob(job.id!);
        }
        return completed !== undefined;
      },
      15_000,
      `a sync job ${jobIds.join(' or ')} to complete`,
    );
    return completed?.returnvalue;
  } finally {
    await queue.close();
  }
}

async function pollStatus(id: string, wanted: string) {
  await waitUntil(
    async () => (await system.receiver.inject({ method: 'GET', url: `/orders/${id}`, headers: asService })).json().status === wanted,
    15_000,
    `order ${id} to be ${wanted}`,
  );
}

describe('POST /orders', () => {
  it('creates an order with its PaymentIntent (metadata order_id, account_id)', async () => {
    const accountId = account();
    const response = await createOrder({ accountId, amount: 1_500, currency: 'EUR' });
    expect(response.statusCode).toBe(201);
    const order = response.json();
    expect(order).toMatchObject({
      accountId,
      amount: 1_500,
      currency: 'eur',
      status: 'awaiting_payment',
      paymentIntentId: expect.stringMatching(/^pi_/),
      clientSecret: expect.stringContaining('_secret_'),
    });
    expect(order.id).toMatch(/^ord_[A-Za-z0-9_-]{22}$/);
    const intent = await system.stripe.paymentIntents.retrieve(order.paymentIntentId);
    expect(intent).toMatchObject({ amount: 1_500, currency: 'eur', metadata: { order_id: order.id, account_id: accountId } });
  });

  it('turns 20 concurrent requests with one Idempotency-Key into one order and one PaymentIntent', async () => {
    const body = { accountId: account(), amount: 999, currency: 'usd' };
    const key = randomUUID();
    const responses = await Promise.all(Array.from({ length: 20 }, () => createOrder(body, key)));
    const statuses = responses.map((response) => response.statusCode);
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    expect(statuses.filter((status) => status === 200)).toHaveLength(19);
    expect(new Set(responses.map((response) => response.json().id)).size).toBe(1);
    expect(new Set(responses.map((response) => response.json().paymentIntentId)).size).toBe(1);
    expect(await db.prisma.order.count({ where: { accountId: body.accountId } })).toBe(1);
  });

  it('answers 409 for the same key with another body', async () => {
    const key = randomUUID();
    const accountId = account();
    expect((await createOrder({ accountId, amount: 100, currency: 'usd' }, key)).statusCode).toBe(201);
    const conflict = await createOrder({ accountId, amount: 200, currency: 'usd' }, key);
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json()).toMatchObject({ error: 'idempotency_conflict', message: expect.any(String) });
  });

  it('answers 400 for an order in another currency than the account was credited in', async () => {
    const accountId = account();
    const paid = (await createOrder({ accountId, amount: 100, currency: 'usd' })).json();
    system.emulator.controller.succeedPaymentIntent(paid.paymentIntentId);
    await pollStatus(paid.id, 'credited');
    const response = await createOrder({ accountId, amount: 100, currency: 'gbp' });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: 'currency_mismatch' });
    expect(await db.prisma.order.count({ where: { accountId } })).toBe(1);
  });

  it('lets an unpaid order in another currency lock nobody out: the first credit decides (squatting)', async () => {
    const accountId = account();
    // Someone gets an order in jpy for this account first and never pays it.
    expect((await createOrder({ accountId, amount: 500, currency: 'jpy' })).statusCode).toBe(201);
    const usd = await createOrder({ accountId, amount: 2_000, currency: 'usd' });
    expect(usd.statusCode).toBe(201);
    expect(usd.json()).toMatchObject({
      accountId,
      currency: 'usd',
      status: 'awaiting_payment',
      paymentIntentId: expect.stringMatching(/^pi_/),
    });
  });

  it.each([
    ['no Idempotency-Key', { accountId: 'a1', amount: 100, currency: 'usd' }, null, 'idempotency_key_required'],
    ['a float amount', { accountId: 'a1', amount: 10.5, currency: 'usd' }, 'k', 'invalid_request'],
    ['a negative amount', { accountId: 'a1', amount: -100, currency: 'usd' }, 'k', 'invalid_request'],
    ['a zero amount', { accountId: 'a1', amount: 0, currency: 'usd' }, 'k', 'invalid_request'],
    ['an amount as a string', { accountId: 'a1', amount: '100', currency: 'usd' }, 'k', 'invalid_request'],
    ['an absurd amount', { accountId: 'a1', amount: 1e12, currency: 'usd' }, 'k', 'invalid_request'],
    ['a bad currency', { accountId: 'a1', amount: 100, currency: 'dollars' }, 'k', 'invalid_request'],
    ['three letters that are no currency', { accountId: 'a1', amount: 100, currency: 'abc' }, 'k', 'invalid_request'],
    ['a missing account', { amount: 100, currency: 'usd' }, 'k', 'invalid_request'],
    ['an unknown field', { accountId: 'a1', amount: 100, currency: 'usd', balance: 5 }, 'k', 'invalid_request'],
    ['an array body', [1, 2], 'k', 'invalid_request'],
  ])('answers 400 for %s', async (_name, body, key, code) => {
    const response = await createOrder(body, key === null ? null : `${key}-${randomUUID()}`);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: code, message: expect.any(String) });
  });

  it('leaves a retry-safe order when Stripe fails, and the retry gets its PaymentIntent', async () => {
    const deadStripe = await buildTestReceiver({
      databaseUrl: db.url,
      prefix: system.prefix,
      stripe: createStripeClient('sk_test_x', 'http://127.0.0.1:9'),
    });
    const body = { accountId: account(), amount: 4_200, currency: 'usd' };
    const key = randomUUID();
    try {
      const failed = await createOrder(body, key, deadStripe);
      expect(failed.statusCode).toBe(503);
      expect(failed.json()).toMatchObject({ error: 'payment_provider_unavailable' });
    } finally {
      await deadStripe.close();
    }
    const retried = await createOrder(body, key);
    expect(retried.statusCode).toBe(200);
    expect(retried.json().paymentIntentId).toMatch(/^pi_/);
    expect(await db.prisma.order.count({ where: { accountId: body.accountId } })).toBe(1);
  });
});

describe('GET /orders/:id', () => {
  it('answers 404 for unknown or malformed ids', async () => {
    for (const id of ['ord_AAAAAAAAAAAAAAAAAAAAAA', 'nope', '1', '%00', "ord_' OR 1=1 --"]) {
      const response = await system.receiver.inject({ method: 'GET', url: `/orders/${encodeURIComponent(id)}`, headers: asService });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ error: 'order_not_found' });
    }
  });

  it('answers 414 with a JSON error for an absurdly long id', async () => {
    const response = await system.receiver.inject({ method: 'GET', url: `/orders/ord_${'x'.repeat(500)}`, headers: asService });
    expect(response.statusCode).toBe(414);
    expect(response.json()).toMatchObject({ error: expect.any(String), message: expect.any(String) });
  });
});

describe('paying an order, end to end', () => {
  it('goes from awaiting_payment to credited through the emulator, receiver, queue and worker', async () => {
    const accountId = account();
    const order = (await createOrder({ accountId, amount: 2_500, currency: 'usd' })).json();
    system.emulator.controller.succeedPaymentIntent(order.paymentIntentId);
    await pollStatus(order.id, 'credited');
    const ledger = await db.prisma.ledgerEntry.findMany({ where: { accountId } });
    expect(ledger).toMatchObject([{ entryType: 'topup', amount: 2_500, reference: order.paymentIntentId }]);
  });

  it('credits once under 50 concurrent confirms plus the webhook', async () => {
    const accountId = account();
    const order = (await createOrder({ accountId, amount: 7_700, currency: 'usd' })).json();
    system.emulator.controller.succeedPaymentIntent(order.paymentIntentId, { checkout: true });
    const confirms = await Promise.all(
      Array.from({ length: 50 }, () => system.receiver.inject({ method: 'POST', url: `/orders/${order.id}/confirm`, headers: asService })),
    );
    expect(confirms.every((response) => response.statusCode === 202)).toBe(true);
    await pollStatus(order.id, 'credited');
    await waitForQuiet();
    expect(await db.prisma.ledgerEntry.count({ where: { accountId } })).toBe(1);
    expect((await db.prisma.account.findUniqueOrThrow({ where: { id: accountId } })).balance).toBe(7_700n);
  });

  it('confirms by asking Stripe: an unpaid order stays unpaid', async () => {
    const order = (await createOrder({ accountId: account(), amount: 300, currency: 'usd' })).json();
    const confirmedAt = Date.now();
    const response = await system.receiver.inject({ method: 'POST', url: `/orders/${order.id}/confirm`, headers: asService });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ id: order.id, status: 'awaiting_payment' });
    // The check with Stripe ran (its job completed) and found nothing to apply.
    expect(await syncResult(order.paymentIntentId, confirmedAt, Date.now())).toMatchObject({ outcomes: [] });
    expect((await system.receiver.inject({ method: 'GET', url: `/orders/${order.id}`, headers: asService })).json().status).toBe(
      'awaiting_payment',
    );
  });

  it('follows refunds and a won dispute through to the balance', async () => {
    const accountId = account();
    const order = (await createOrder({ accountId, amount: 1_000, currency: 'usd' })).json();
    const { controller } = system.emulator;
    controller.succeedPaymentIntent(order.paymentIntentId);
    await pollStatus(order.id, 'credited');
    controller.refundPaymentIntent(order.paymentIntentId, { amount: 400 });
    await pollStatus(order.id, 'partially_refunded');
    const dispute = controller.disputePaymentIntent(order.paymentIntentId);
    await pollStatus(order.id, 'disputed');
    controller.closeDispute(dispute.dispute!.id, { status: 'won' });
    await pollStatus(order.id, 'partially_refunded');
    expect((await db.prisma.account.findUniqueOrThrow({ where: { id: accountId } })).balance).toBe(600n);
  });
});
