import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyPaymentFacts } from '@ledger/ledger';
import { resolveReview } from '../apps/order-worker/src/operations/review.js';
import { isUniqueConstraintError } from './helpers/database.js';
import {
  atOlderVersion,
  createOrderFixture,
  disputeLifecycle,
  events,
  type OrderFixture,
  type StripeEventFixture,
} from './helpers/fixtures.js';
import { useLedgerDatabase } from './helpers/ledger.js';

const ledger = useLedgerDatabase();
const db = {
  get prisma() {
    return ledger.prisma();
  },
};
const { apply, balanceOf } = ledger;

async function ledgerOf(order: OrderFixture) {
  return db.prisma.ledgerEntry.findMany({ where: { orderId: order.id }, orderBy: { id: 'asc' } });
}
async function statusOf(order: OrderFixture) {
  return (await ledger.orderOf(order)).status;
}

describe('the ledger schema', () => {
  it('rejects a second entry with the same reference (P2002) and the transaction leaves the balance unchanged', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 700 });
    const credit = () =>
      db.prisma.$transaction(async (tx) => {
        await tx.account.update({ where: { id: order.accountId }, data: { balance: { increment: 700 } } });
        await tx.ledgerEntry.create({
          data: {
            accountId: order.accountId,
            entryType: 'topup',
            amount: 700,
            currency: 'usd',
            reference: order.paymentIntentId,
            orderId: order.id,
          },
        });
        await tx.order.update({ where: { id: order.id }, data: { status: 'credited' } });
      });
    await credit();
    const second = await credit().catch((error: unknown) => error);
    expect(isUniqueConstraintError(second)).toBe(true);
    expect(await balanceOf(order.accountId)).toBe(700);
    expect(await ledgerOf(order)).toHaveLength(1);
  });
});

describe('crediting a payment', () => {
  it('credits once when the same event is applied 20 times concurrently', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 2_500 });
    const succeeded = events.paymentIntent('succeeded', order);
    const results = await Promise.all(Array.from({ length: 20 }, () => apply(succeeded)));
    expect(results.filter((result) => result.eventIsNew)).toHaveLength(1);
    expect(await ledgerOf(order)).toMatchObject([{ entryType: 'topup', amount: 2_500, reference: order.paymentIntentId }]);
    expect(await balanceOf(order.accountId)).toBe(2_500);
    expect(await statusOf(order)).toBe('credited');
    const inbox = await db.prisma.stripeEvent.findUniqueOrThrow({ where: { id: succeeded.id } });
    expect(inbox.status).toBe('processed');
  });

  it('credits once when payment_intent.succeeded and checkout.session.completed report one payment at once', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_200 });
    await Promise.all([apply(events.paymentIntent('succeeded', order)), apply(events.checkoutCompleted(order))]);
    expect(await ledgerOf(order)).toHaveLength(1);
    expect(await balanceOf(order.accountId)).toBe(1_200);
  });

  it('credits several orders of one account concurrently without losing any', async () => {
    const first = await createOrderFixture(db.prisma, { amount: 100 });
    const orders = [
      first,
      ...(await Promise.all(
        Array.from({ length: 9 }, (_, i) => createOrderFixture(db.prisma, { accountId: first.accountId, amount: 100 * (i + 2) })),
      )),
    ];
    await Promise.all(orders.map((order) => apply(events.paymentIntent('succeeded', order))));
    expect(await balanceOf(first.accountId)).toBe(orders.reduce((sum, order) => sum + order.amount, 0));
  });

  it('puts a payment whose amount or currency differs from the order into needs_review, uncredited', async () => {
    const short = await createOrderFixture(db.prisma, { amount: 1_000 });
    await apply(events.paymentIntent('succeeded', short, { amount: 999 }));
    expect(await statusOf(short)).toBe('needs_review');
    expect(await ledgerOf(short)).toEqual([]);

    const otherCurrency = await createOrderFixture(db.prisma, { amount: 1_000 });
    await apply(events.paymentIntent('succeeded', otherCurrency, { currency: 'eur' }));
    expect(await statusOf(otherCurrency)).toBe('needs_review');
    expect(await balanceOf(otherCurrency.accountId)).toBe(0);
  });

  it('keeps a credited order credited when a late payment_failed or processing arrives', async () => {
    const order = await createOrderFixture(db.prisma);
    await apply(events.paymentIntent('succeeded', order));
    await apply(events.paymentIntent('payment_failed', order));
    await apply(events.paymentIntent('processing', order));
    expect(await statusOf(order)).toBe('credited');
  });

  it('credits through a sync (no event) exactly once alongside the webhook', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 4_000 });
    const fact = {
      kind: 'payment_succeeded' as const,
      paymentIntentId: order.paymentIntentId,
      orderId: order.id,
      amount: 4_000,
      currency: 'usd',
    };
    await Promise.all([
      applyPaymentFacts(db.prisma, [fact]),
      apply(events.paymentIntent('succeeded', order)),
      applyPaymentFacts(db.prisma, [fact]),
    ]);
    expect(await ledgerOf(order)).toHaveLength(1);
    expect(await balanceOf(order.accountId)).toBe(4_000);
  });

  it('refuses to credit an order through a PaymentIntent that is not its own', async () => {
    const order = await createOrderFixture(db.prisma);
    await apply(events.paymentIntent('succeeded', { ...order, paymentIntentId: 'pi_someoneelse123' }));
    expect(await statusOf(order)).toBe('needs_review');
    expect(await balanceOf(order.accountId)).toBe(0);
  });
});

describe('refunds and disputes', () => {
  it('debits one refund once, whichever events report it', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    await apply(events.paymentIntent('succeeded', order));
    const refund = { id: 're_same123', amount: 1_000 };
    await Promise.all([apply(events.refund('refund.created', order, refund)), apply(events.refund('charge.refunded', order, refund))]);
    expect((await ledgerOf(order)).map((entry) => [entry.entryType, entry.amount])).toEqual([
      ['topup', 1_000],
      ['refund', -1_000],
    ]);
    expect(await statusOf(order)).toBe('refunded');
  });

  it('debits two partial refunds twice', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    await apply(events.paymentIntent('succeeded', order));
    await apply(events.refund('refund.created', order, { id: 're_part1', amount: 300 }));
    expect(await statusOf(order)).toBe('partially_refunded');
    await apply(events.refund('refund.created', order, { id: 're_part2', amount: 200 }));
    expect(await balanceOf(order.accountId)).toBe(500);
    expect(await statusOf(order)).toBe('partially_refunded');
  });

  it('debits a dispute once and reverses it once when won', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 800 });
    await apply(events.paymentIntent('succeeded', order));
    const opened = events.dispute('created', order, { id: 'dp_one', status: 'needs_response' });
    await Promise.all([apply(opened), apply(opened)]);
    expect(await balanceOf(order.accountId)).toBe(0);
    expect(await statusOf(order)).toBe('disputed');
    await apply(events.dispute('closed', order, { id: 'dp_one', status: 'won' }));
    await apply(events.dispute('closed', order, { id: 'dp_one', status: 'won' }));
    expect(await balanceOf(order.accountId)).toBe(800);
    expect(await statusOf(order)).toBe('credited');
  });

  it('keeps the debit of a lost dispute', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 800 });
    await apply(events.paymentIntent('succeeded', order));
    await apply(events.dispute('created', order, { id: 'dp_two', status: 'needs_response' }));
    await apply(events.dispute('closed', order, { id: 'dp_two', status: 'lost' }));
    expect(await balanceOf(order.accountId)).toBe(0);
    expect(await statusOf(order)).toBe('disputed');
  });
});

describe('order of arrival', () => {
  it("any shuffle of a payment's events, with duplicates, ends in the same ledger and status", async () => {
    // The payment's story: paid, a processing notice, a failed earlier attempt, a partial refund
    // reported twice, a dispute opened and won. Each run uses fresh ids.
    const story = (order: OrderFixture) => {
      const refund = { id: `re_${order.id.slice(4, 16)}`, amount: 250 };
      const dispute = { id: `dp_${order.id.slice(4, 16)}`, status: 'needs_response' };
      return [
        events.paymentIntent('succeeded', order),
        events.paymentIntent('processing', order),
        events.paymentIntent('payment_failed', order),
        events.checkoutCompleted(order),
        events.refund('refund.created', order, refund),
        events.refund('charge.refunded', order, refund),
        events.dispute('created', order, dispute),
        events.dispute('closed', order, { ...dispute, status: 'won' }),
      ];
    };
    const summary = async (order: OrderFixture) => ({
      status: await statusOf(order),
      balance: await balanceOf(order.accountId),
      ledger: (await ledgerOf(order)).map((entry) => `${entry.entryType}:${entry.amount}`).sort(),
    });

    const reference = await createOrderFixture(db.prisma, { amount: 1_000 });
    for (const stripeEvent of story(reference)) await apply(stripeEvent);
    const expected = await summary(reference);
    expect(expected).toEqual({
      status: 'partially_refunded',
      balance: 750,
      ledger: ['dispute:-1000', 'dispute_reversal:1000', 'refund:-250', 'topup:1000'],
    });

    // Every event at least once, up to 8 of them twice, in any order: a shuffle of event indices.
    const deliveryOrder = fc.array(fc.nat({ max: 7 }), { maxLength: 8 }).chain((extra) => {
      const indices = [0, 1, 2, 3, 4, 5, 6, 7, ...extra];
      return fc.shuffledSubarray(indices, { minLength: indices.length, maxLength: indices.length });
    });
    await fc.assert(
      fc.asyncProperty(deliveryOrder, fc.boolean(), async (indices, concurrently) => {
        const order = await createOrderFixture(db.prisma, { amount: 1_000 });
        const all = story(order);
        const deliveries = indices.map((index) => all[index]!);
        if (concurrently) await Promise.all(deliveries.map((delivery) => apply(delivery)));
        else for (const stripeEvent of deliveries) await apply(stripeEvent);
        expect(await summary(order)).toEqual(expected);
      }),
      { numRuns: 25 },
    );
  });

  it('any shuffle of a story with failing refunds, a second PaymentIntent and a review resolution ends in the ledger Stripe implies', async () => {
    // A random story per run: the order is paid; maybe a second PaymentIntent pays it too (held);
    // up to three refunds that each may fail (never more than was paid in all); maybe a dispute,
    // won or lost. Each fact is reported by one to three event types, some twice, in any order,
    // sequentially or concurrently; then an operator settles the review, if any.
    const storyArbitrary = fc.record({
      secondPayment: fc.boolean(),
      refunds: fc.array(fc.record({ amount: fc.integer({ min: 1, max: 300 }), fails: fc.boolean() }), { maxLength: 3 }),
      dispute: fc.option(fc.constantFrom('won' as const, 'lost' as const, 'inquiry' as const, 'won_without_funds' as const), {
        nil: undefined,
      }),
      olderShapes: fc.boolean(),
      extraCopies: fc.array(fc.nat({ max: 40 }), { maxLength: 6 }),
      seed: fc.nat(),
      concurrently: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(storyArbitrary, async (story) => {
        const order = await createOrderFixture(db.prisma, { amount: 1_000 });
        const tag = order.id.slice(4, 14);
        const deliveries: StripeEventFixture[] = [events.paymentIntent('succeeded', order), events.checkoutCompleted(order)];
        const expected: string[] = ['topup:1000'];
        if (story.secondPayment) deliveries.push(events.paymentIntent('succeeded', { ...order, paymentIntentId: `pi_2nd${tag}` }));
        story.refunds.forEach((refund, index) => {
          const id = `re_${index}${tag}`;
          deliveries.push(events.refund('refund.created', order, { id, amount: refund.amount, status: 'pending' }));
          if (refund.fails) {
            deliveries.push(
              events.refund('refund.failed', order, { id, amount: refund.amount }),
              events.refund('charge.refund.updated', order, { id, amount: refund.amount, status: 'failed' }),
            );
            expected.push(`refund:${-refund.amount}`, `refund_reversal:${refund.amount}`);
          } else {
            deliveries.push(events.refund('refund.updated', order, { id, amount: refund.amount, status: 'succeeded' }));
            expected.push(`refund:${-refund.amount}`);
          }
        });
        if (story.dispute) {
          deliveries.push(...disputeLifecycle(order, `dp_${tag}`, 100, story.dispute));
          if (story.dispute === 'won' || story.dispute === 'lost') expected.push('dispute:-100');
          if (story.dispute === 'won') expected.push('dispute_reversal:100');
        }
        // Some events also arrive at an API version from before 2022-11-15 (the upgrade recipe's
        // second endpoint): same id, the older shape.
        if (story.olderShapes) deliveries.push(...deliveries.filter((_, index) => index % 2 === 0).map(atOlderVersion));
        for (const copy of story.extraCopies) deliveries.push(deliveries[copy % deliveries.length]!);
        const shuffled = fc.sample(fc.shuffledSubarray(deliveries, { minLength: deliveries.length, maxLength: deliveries.length }), {
          seed: story.seed,
          numRuns: 1,
        })[0]!;
        if (story.concurrently) await Promise.all(shuffled.map((delivery) => apply(delivery)));
        else for (const stripeEvent of shuffled) await apply(stripeEvent);

        const ledger = (await ledgerOf(order)).map((entry) => `${entry.entryType}:${entry.amount}`);
        expect(ledger.sort()).toEqual([...expected].sort());
        const net = expected.reduce((sum, entry) => sum + Number(entry.split(':')[1]), 0);
        expect(await balanceOf(order.accountId)).toBe(net);
        const refunded = story.refunds.filter((refund) => !refund.fails).reduce((sum, refund) => sum + refund.amount, 0);
        const settled = refunded >= 1_000 ? 'refunded' : refunded > 0 ? 'partially_refunded' : 'credited';
        const expectedStatus = story.dispute === 'lost' ? 'disputed' : settled;
        if (story.secondPayment) {
          expect(await statusOf(order)).toBe('needs_review');
          // The operator refunds the duplicate payment at Stripe and dismisses the review.
          const resolution = await resolveReview(db.prisma, {
            orderId: order.id,
            decision: 'dismiss',
            note: 'refunded the duplicate',
            resolvedBy: 'property',
          });
          expect(resolution.outcome).toBe('resolved');
        }
        expect(await statusOf(order)).toBe(expectedStatus);
        expect(await ledgerOf(order)).toHaveLength(expected.length);
      }),
      { numRuns: 30 },
    );
  });
});

describe('disputes as Stripe runs them (https://docs.stripe.com/disputes)', () => {
  const entries = async (order: OrderFixture) => (await ledgerOf(order)).map((entry) => `${entry.entryType}:${entry.amount}`).sort();

  it('an inquiry, answered or closed, withdraws nothing and posts nothing', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    await apply(events.paymentIntent('succeeded', order));
    for (const stripeEvent of disputeLifecycle(order, 'dp_inquiry', 1_000, 'inquiry')) await apply(stripeEvent);
    expect(await entries(order)).toEqual(['topup:1000']);
    expect(await balanceOf(order.accountId)).toBe(1_000);
    expect(await statusOf(order)).toBe('credited');
  });

  it('an inquiry that escalates becomes a dispute: its funds are withdrawn once, and given back once when won', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    await apply(events.paymentIntent('succeeded', order));
    const id = 'dp_escalated';
    await apply(events.dispute('created', order, { id, status: 'warning_needs_response', funds: 'none' }));
    expect(await entries(order)).toEqual(['topup:1000']);
    await apply(events.dispute('updated', order, { id, status: 'needs_response', funds: 'withdrawn' }));
    await apply(events.dispute('funds_withdrawn', order, { id, status: 'needs_response', funds: 'withdrawn' }));
    expect(await entries(order)).toEqual(['dispute:-1000', 'topup:1000']);
    expect(await statusOf(order)).toBe('disputed');
    await apply(events.dispute('funds_reinstated', order, { id, status: 'won', funds: 'reinstated' }));
    await apply(events.dispute('closed', order, { id, status: 'won', funds: 'reinstated' }));
    expect(await entries(order)).toEqual(['dispute:-1000', 'dispute_reversal:1000', 'topup:1000']);
    expect(await balanceOf(order.accountId)).toBe(1_000);
    expect(await statusOf(order)).toBe('credited');
  });

  it("debits a dispute's own amount when it is for less than the charge", async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    await apply(events.paymentIntent('succeeded', order));
    for (const stripeEvent of disputeLifecycle(order, 'dp_partial', 300, 'lost')) await apply(stripeEvent);
    expect(await entries(order)).toEqual(['dispute:-300', 'topup:1000']);
    expect(await balanceOf(order.accountId)).toBe(700);
  });

  it('a dispute with no balance transaction moves only the order; its funds move when Stripe says they did', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    await apply(events.paymentIntent('succeeded', order));
    const id = 'dp_nofunds';
    expect((await apply(events.dispute('created', order, { id, status: 'needs_response', funds: 'none' }))).outcomes).toEqual([
      'status_only',
    ]);
    expect(await entries(order)).toEqual(['topup:1000']);
    expect(await statusOf(order)).toBe('disputed');
    // Withdrawn later (some payment methods): the debit goes in then.
    await apply(events.dispute('funds_withdrawn', order, { id, status: 'under_review', funds: 'withdrawn' }));
    expect(await entries(order)).toEqual(['dispute:-1000', 'topup:1000']);
  });

  it("a won dispute's events, each several times, in any order and concurrently, net to zero", async () => {
    const plan = fc.record({
      copies: fc.array(fc.nat({ max: 4 }), { minLength: 0, maxLength: 10 }),
      seed: fc.nat(),
      concurrently: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(plan, async ({ copies, seed, concurrently }) => {
        const order = await createOrderFixture(db.prisma, { amount: 1_000 });
        await apply(events.paymentIntent('succeeded', order));
        const lifecycle = disputeLifecycle(order, `dp_${order.id.slice(4, 16)}`, 400, 'won');
        const deliveries = [...lifecycle, ...copies.map((index) => lifecycle[index % lifecycle.length]!)];
        const shuffled = fc.sample(fc.shuffledSubarray(deliveries, { minLength: deliveries.length, maxLength: deliveries.length }), {
          seed,
          numRuns: 1,
        })[0]!;
        if (concurrently) await Promise.all(shuffled.map((delivery) => apply(delivery)));
        else for (const stripeEvent of shuffled) await apply(stripeEvent);
        expect(await entries(order)).toEqual(['dispute:-400', 'dispute_reversal:400', 'topup:1000']);
        expect(await balanceOf(order.accountId)).toBe(1_000);
        expect(await statusOf(order)).toBe('credited');
      }),
      { numRuns: 20 },
    );
  });
});
