import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PaymentCredit } from '../apps/order-worker/src/credit-statement.js';
import { createCreditBatcher, type ApplyResult, type EventSource } from '../apps/order-worker/src/ledger.js';
import { createOrderFixture, insertOrderFixture, newOrderFixture, type OrderFixture } from './helpers/fixtures.js';
import { useLedgerDatabase } from './helpers/ledger.js';

// Group commit: many payments in one statement must end exactly as the same payments applied one
// by one — duplicates, two event types for one payment, several orders of one account and two
// PaymentIntents for one order inside one batch included.
const ledger = useLedgerDatabase();

let eventCounter = 0;
const source = (paymentIntentId: string, type = 'payment_intent.succeeded'): EventSource => ({
  id: `evt_gc${Date.now()}${++eventCounter}`,
  type,
  objectId: paymentIntentId,
  created: Math.floor(Date.now() / 1000),
});
const payment = (order: OrderFixture, overrides: { paymentIntentId?: string; amount?: number } = {}): PaymentCredit['fact'] => ({
  kind: 'payment_succeeded',
  paymentIntentId: overrides.paymentIntentId ?? order.paymentIntentId,
  orderId: order.id,
  amount: overrides.amount ?? order.amount,
  currency: order.currency,
});

/** The observable end state of a set of orders: ledger per order, balances, statuses. */
async function endState(orders: OrderFixture[]) {
  return Promise.all(
    orders.map(async (order) => ({
      ledger: await ledger.entriesOf(order),
      status: (await ledger.orderOf(order)).status,
      balance: await ledger.balanceOf(order.accountId),
    })),
  );
}

/** A scenario over fresh orders: some share an account, one has no PaymentIntent stored. */
async function scenarioOrders(accounts: number, perAccount: number): Promise<OrderFixture[]> {
  const orders: OrderFixture[] = [];
  for (let a = 0; a < accounts; a += 1) {
    const first = await createOrderFixture(ledger.prisma(), { amount: 100 + a });
    orders.push(first);
    for (let i = 1; i < perAccount; i += 1)
      orders.push(await createOrderFixture(ledger.prisma(), { accountId: first.accountId, amount: 100 + a + i }));
  }
  return orders;
}

describe('group commit', () => {
  it('ends as applying one by one, whatever a batch holds', { timeout: 120_000 }, async () => {
    // Per order: which reports of its payment arrive (checkout and intent events, a sync, copies
    // of one event), whether a second PaymentIntent pays it, whether it is paid short.
    const reports = fc.record({
      copies: fc.integer({ min: 1, max: 3 }),
      sync: fc.boolean(),
      checkout: fc.boolean(),
      secondPayment: fc.boolean(),
      short: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(reports, { minLength: 6, maxLength: 6 }),
        fc.integer({ min: 2, max: 12 }),
        fc.nat(),
        async (plan, maxBatch, seed) => {
          const build = (orders: OrderFixture[]) =>
            orders.flatMap((order, index) => {
              const p = plan[index]!;
              const fact = payment(order, p.short ? { amount: order.amount - 1 } : {});
              const intentEvent = source(order.paymentIntentId);
              const credits: PaymentCredit[] = Array.from({ length: p.copies }, () => ({ fact, source: intentEvent }));
              if (p.checkout) credits.push({ fact, source: source(order.paymentIntentId, 'checkout.session.completed') });
              if (p.sync) credits.push({ fact });
              if (p.secondPayment) {
                const second = `pi_2${order.id.slice(4, 16)}`;
                credits.push({ fact: payment(order, { paymentIntentId: second }), source: source(second) });
              }
              return credits;
            });
          const shuffle = <T>(items: T[]) =>
            fc.sample(fc.shuffledSubarray(items, { minLength: items.length, maxLength: items.length }), { seed, numRuns: 1 })[0]!;

          // One by one, in order, with batching off.
          const sequentialOrders = await scenarioOrders(2, 3);
          const oneByOne = createCreditBatcher(ledger.prisma(), { maxBatch: 1, maxWaitMs: 0 });
          for (const credit of shuffle(build(sequentialOrders))) await oneByOne.credit(credit);

          // All at once through a batcher.
          const batchedOrders = await scenarioOrders(2, 3);
          const batcher = createCreditBatcher(ledger.prisma(), { maxBatch, maxWaitMs: 20 });
          const results: ApplyResult[] = await Promise.all(shuffle(build(batchedOrders)).map((credit) => batcher.credit(credit)));
          await batcher.drain();

          expect(await endState(batchedOrders)).toEqual(await endState(sequentialOrders));
          const credited = results.reduce((sum, result) => sum + result.credited, 0);
          expect(credited).toBe(plan.filter((p) => !p.short).length);
        },
      ),
      { numRuns: 12 },
    );
  });

  it('applies a batch PostgreSQL refuses payment by payment, so one bad payment does not fail its neighbours', async () => {
    // An order with no PaymentIntent stored, paid by two PaymentIntents in one batch: the
    // one-top-up index refuses the statement; the payments are then applied one by one.
    const orphan = await insertOrderFixture(ledger.prisma(), newOrderFixture({ amount: 700 }));
    await ledger.prisma().order.update({ where: { id: orphan.id }, data: { paymentIntentId: null } });
    const neighbours = await Promise.all(Array.from({ length: 5 }, () => createOrderFixture(ledger.prisma(), { amount: 300 })));
    const batcher = createCreditBatcher(ledger.prisma(), { maxBatch: 20, maxWaitMs: 50 });
    const credits: PaymentCredit[] = [
      { fact: payment(orphan, { paymentIntentId: `pi_a${orphan.id.slice(4, 16)}` }), source: source('pi_a') },
      { fact: payment(orphan, { paymentIntentId: `pi_b${orphan.id.slice(4, 16)}` }), source: source('pi_b') },
      ...neighbours.map((order) => ({ fact: payment(order), source: source(order.paymentIntentId) })),
    ];
    const results = await Promise.all(credits.map((credit) => batcher.credit(credit)));
    await batcher.drain();
    expect(results.map((result) => result.outcomes[0]).sort()).toEqual([
      'applied',
      'applied',
      'applied',
      'applied',
      'applied',
      'applied',
      'held',
    ]);
    for (const order of neighbours) expect(await ledger.entriesOf(order)).toEqual(['topup:300']);
    expect(await ledger.entriesOf(orphan)).toEqual(['topup:700']);
  });

  it('never deadlocks when batches cross the same accounts in opposite orders', async () => {
    const orders = await scenarioOrders(6, 4);
    const reversed = [...orders].reverse();
    const batchers = [0, 1, 2].map(() => createCreditBatcher(ledger.prisma(), { maxBatch: 8, maxWaitMs: 2, maxInFlight: 3 }));
    await Promise.all([
      ...orders.map((order, index) => batchers[index % 3]!.credit({ fact: payment(order), source: source(order.paymentIntentId) })),
      ...reversed.map((order, index) => batchers[(index + 1) % 3]!.credit({ fact: payment(order) })),
    ]);
    await Promise.all(batchers.map((batcher) => batcher.drain()));
    for (const order of orders) expect(await ledger.entriesOf(order)).toEqual([`topup:${order.amount}`]);
  });
});
