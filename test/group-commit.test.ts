import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { createPrismaClient, poolOf } from '@ledger/shared';
import { describe, expect, it } from 'vitest';
import {
  applyFactsInTransaction,
  applyPaymentFacts,
  createCreditBatcher,
  type ApplyResult,
  type CreditBatcher,
  type EventSource,
  type PaymentCredit,
} from '@ledger/ledger';
import { createOrderFixture, insertOrderFixture, newOrderFixture, type OrderFixture } from './helpers/fixtures.js';
import { useLedgerDatabase } from './helpers/ledger.js';

// Group commit, and the twin of the two writers: payments through the batched statement (many at
// once, with what it does not decide falling to the general path) must end exactly as the same
// payments applied one by one by the general path alone — duplicates, two event types for one
// payment, several orders of one account, two PaymentIntents for one order and short payments
// inside one batch included.
const ledger = useLedgerDatabase();

/** Through the one decision point, as the worker does: the statement via the batcher first. */
const viaBatcher = (batcher: CreditBatcher, credit: PaymentCredit) =>
  applyPaymentFacts(ledger.prisma(), [credit.fact], credit.source, { batcher });

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

/**
 * The observable end state of a set of orders, with the scenario's own ids replaced by their role
 * (its PaymentIntent, a second one): the ledger per order (type, amount, reference, event or not),
 * the order row, the balance, and the inbox rows of the order's events.
 */
async function endState(orders: OrderFixture[]) {
  return Promise.all(
    orders.map(async (order) => {
      const role = (id: string | null) => (id === order.paymentIntentId ? 'own' : id === null ? null : 'second');
      const entries = await ledger.prisma().ledgerEntry.findMany({ where: { orderId: order.id }, orderBy: { id: 'asc' } });
      const row = await ledger.orderOf(order);
      const inbox = await ledger.prisma().$queryRaw<{ type: string; status: string; attempts: number; detail: boolean }[]>`
        SELECT type, status::text AS status, attempts, detail IS NOT NULL AS detail FROM stripe_events
        WHERE object_id IN (${order.paymentIntentId}, ${`pi_2${order.id.slice(4, 16)}`}) ORDER BY type, status, attempts`;
      const held = await ledger.prisma().heldFact.findMany({ where: { orderId: order.id }, orderBy: { id: 'asc' } });
      return {
        ledger: entries.map((entry) => `${entry.entryType}:${entry.amount}:${role(entry.reference)}:${entry.stripeEventId !== null}`),
        order: {
          status: row.status,
          amountRefunded: row.amountRefunded,
          paymentIntent: role(row.paymentIntentId),
          review: row.reviewReason !== null,
        },
        balance: await ledger.balanceOf(order.accountId),
        // Concurrent payments of one order may be held in either order: compared as a set.
        held: held.map((fact) => `${fact.entryType}:${fact.amount}:${role(fact.reference)}`).sort(),
        inbox,
      };
    }),
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
  it('the batched statement and the general path leave identical ledgers, balances, orders and inbox rows', {
    timeout: 120_000,
  }, async () => {
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

          // One by one, in order, through the general path alone (no statement at all).
          const sequentialOrders = await scenarioOrders(2, 3);
          for (const credit of shuffle(build(sequentialOrders)))
            await applyFactsInTransaction(ledger.prisma(), [credit.fact], credit.source);

          // All at once through a batcher: the statement, and the general path for what it declines.
          const batchedOrders = await scenarioOrders(2, 3);
          // One batch at a time keeps the arrival order per PaymentIntent (which report of a payment
          // is first decides which event is `processed` and which `duplicate`); concurrent batches
          // are raced in the tests below.
          const batcher = createCreditBatcher(ledger.prisma(), { maxBatch, maxWaitMs: 20, maxInFlight: 1 });
          const results: ApplyResult[] = await Promise.all(shuffle(build(batchedOrders)).map((credit) => viaBatcher(batcher, credit)));
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
    const results = await Promise.all(credits.map((credit) => viaBatcher(batcher, credit)));
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
      ...orders.map((order, index) => viaBatcher(batchers[index % 3]!, { fact: payment(order), source: source(order.paymentIntentId) })),
      ...reversed.map((order, index) => viaBatcher(batchers[(index + 1) % 3]!, { fact: payment(order) })),
    ]);
    await Promise.all(batchers.map((batcher) => batcher.drain()));
    for (const order of orders) expect(await ledger.entriesOf(order)).toEqual([`topup:${order.amount}`]);
  });
});

describe("the statement's pool", () => {
  it('survives PostgreSQL closing its idle connections before Prisma ever connected, and credits on a new one', async () => {
    // The worker's warm-up and the statement use the pool before Prisma's adapter (which listens
    // for idle-connection errors) has connected: an unheard 'error' event would end the process.
    const applicationName = `gc-${randomBytes(4).toString('hex')}`;
    const prisma = createPrismaClient(ledger.url(), { poolSize: 2, applicationName });
    try {
      const pool = poolOf(prisma)!;
      await Promise.all([pool.query('SELECT pg_sleep(0.05)'), pool.query('SELECT pg_sleep(0.05)')]);
      expect(pool.idleCount).toBe(2);
      const killed = await ledger.prisma().$queryRaw<{ killed: boolean }[]>`
        SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = ${applicationName}`;
      expect(killed).toHaveLength(2);
      await expect.poll(() => pool.idleCount, { timeout: 5_000 }).toBe(0);

      const order = await createOrderFixture(ledger.prisma(), { amount: 400 });
      const batcher = createCreditBatcher(prisma, { maxBatch: 4, maxWaitMs: 2 });
      const result = await applyPaymentFacts(prisma, [payment(order)], source(order.paymentIntentId), { batcher });
      expect(result.credited).toBe(1);
      expect(await ledger.balanceOf(order.accountId)).toBe(400);
    } finally {
      await prisma.$disconnect();
    }
  });
});
