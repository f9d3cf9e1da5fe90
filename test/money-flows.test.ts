import { postgresErrorOf } from '@ledger/shared';
import { describe, expect, it } from 'vitest';
import { applyPaymentFacts } from '@ledger/ledger';
import { resolveReview } from '../apps/order-worker/src/operations/review.js';
import { createOrderFixture, events, insertOrderFixture, newOrderFixture } from './helpers/fixtures.js';
import { useLedgerDatabase } from './helpers/ledger.js';

// Money in the flows Stripe really produces, at the level of the ledger transaction: each case
// asserts balances, ledger rows, statuses and the inbox; the invariants are checked after each.
const ledger = useLedgerDatabase();
const db = {
  get prisma() {
    return ledger.prisma();
  },
};
const { apply, balanceOf, orderOf } = ledger;
const ledgerOf = ledger.entriesOf;

async function inboxStatus(eventId: string) {
  return (await db.prisma.stripeEvent.findUniqueOrThrow({ where: { id: eventId } })).status;
}
async function paid(amount = 1_000, options: { accountId?: string; currency?: string } = {}) {
  const order = await createOrderFixture(db.prisma, { amount, ...options });
  await apply(events.paymentIntent('succeeded', order));
  return order;
}

describe('a refund that fails or is canceled', () => {
  it('gives the money back once, whichever events report the failure, and the order is credited again', async () => {
    const order = await paid(1_000);
    const refund = { id: `re_f${order.id.slice(4, 16)}`, amount: 1_000 };
    await apply(events.refund('refund.created', order, refund));
    expect(await balanceOf(order.accountId)).toBe(0);
    expect((await orderOf(order)).status).toBe('refunded');

    const failed = { ...refund, status: 'failed' };
    await Promise.all([
      apply(events.refund('refund.updated', order, failed)),
      apply(events.refund('refund.failed', order, failed)),
      apply(events.refund('charge.refund.updated', order, failed)),
      apply(events.refund('charge.refunded', order, failed)),
    ]);
    expect(await ledgerOf(order)).toEqual(['topup:1000', 'refund:-1000', 'refund_reversal:1000']);
    expect(await balanceOf(order.accountId)).toBe(1_000);
    expect(await orderOf(order)).toMatchObject({ status: 'credited', amountRefunded: 0 });
  });

  it('nets to zero when the failure arrives before the refund itself', async () => {
    const order = await paid(800);
    const refund = { id: `re_e${order.id.slice(4, 16)}`, amount: 300 };
    await apply(events.refund('refund.failed', order, { ...refund, status: 'failed' }));
    await apply(events.refund('refund.created', order, { ...refund, status: 'pending' }));
    expect((await ledgerOf(order)).sort()).toEqual(['refund:-300', 'refund_reversal:300', 'topup:800']);
    expect(await balanceOf(order.accountId)).toBe(800);
    expect((await orderOf(order)).status).toBe('credited');
  });

  it('treats a canceled refund like a failed one, and keeps other refunds of the order', async () => {
    const order = await paid(1_000);
    await apply(events.refund('refund.created', order, { id: `re_k${order.id.slice(4, 16)}`, amount: 200 }));
    await apply(events.refund('refund.created', order, { id: `re_c${order.id.slice(4, 16)}`, amount: 300, status: 'pending' }));
    await apply(events.refund('refund.updated', order, { id: `re_c${order.id.slice(4, 16)}`, amount: 300, status: 'canceled' }));
    expect(await balanceOf(order.accountId)).toBe(800);
    expect(await orderOf(order)).toMatchObject({ status: 'partially_refunded', amountRefunded: 200 });
  });
});

describe('review never swallows money that moved', () => {
  it('holds a second PaymentIntent paying a credited order, and still posts the refunds and disputes of the first', async () => {
    const order = await paid(500);
    const second = { ...order, paymentIntentId: `pi_second${order.id.slice(4, 14)}` };
    const secondPayment = events.paymentIntent('succeeded', second);
    await apply(secondPayment);
    expect(await inboxStatus(secondPayment.id)).toBe('held');
    expect(await orderOf(order)).toMatchObject({ status: 'needs_review' });
    expect((await orderOf(order)).reviewReason).toMatch(/second PaymentIntent/);
    expect(await balanceOf(order.accountId)).toBe(500);

    const refund = events.refund('refund.created', order, { id: `re_r${order.id.slice(4, 16)}`, amount: 100 });
    const dispute = events.dispute('created', order, { id: `dp_r${order.id.slice(4, 16)}`, status: 'needs_response', amount: 400 });
    await apply(refund);
    await apply(dispute);
    expect(await inboxStatus(refund.id)).toBe('processed');
    expect(await inboxStatus(dispute.id)).toBe('processed');
    expect(await ledgerOf(order)).toEqual(['topup:500', 'refund:-100', 'dispute:-400']);
    expect(await balanceOf(order.accountId)).toBe(0);
    expect((await orderOf(order)).status).toBe('needs_review');
  });

  it('ignores a failed or canceled attempt of another PaymentIntent naming a healthy credited order', async () => {
    const order = await paid(700);
    const other = { ...order, paymentIntentId: `pi_other${order.id.slice(4, 14)}` };
    await apply(events.paymentIntent('payment_failed', other));
    await apply(events.paymentIntent('canceled', other));
    expect(await orderOf(order)).toMatchObject({ status: 'credited', reviewReason: null });
  });

  it('looks at a held event again on replay instead of calling it already applied', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    const short = events.paymentIntent('succeeded', order, { amount: 990 });
    const first = await apply(short);
    expect(first.outcomes).toEqual(['held']);
    const again = await apply(short);
    expect(again).toMatchObject({ eventIsNew: true, outcomes: ['held'] });
    expect(await db.prisma.stripeEvent.findUniqueOrThrow({ where: { id: short.id } })).toMatchObject({ status: 'held', attempts: 2 });
    expect(await db.prisma.heldFact.count({ where: { orderId: order.id } })).toBe(1);
  });

  it('settles a review with exactly one adjustment however many resolves race, and the held events are done', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    const short = events.paymentIntent('succeeded', order, { amount: 990 });
    await apply(short);
    expect(await balanceOf(order.accountId)).toBe(0);

    const resolve = () =>
      resolveReview(db.prisma, {
        orderId: order.id,
        decision: 'credit',
        note: 'customer paid 9.90; credit what was paid',
        resolvedBy: 'ops@test',
      });
    const results = await Promise.all(Array.from({ length: 8 }, resolve));
    expect(results.filter((result) => result.outcome === 'resolved')).toHaveLength(1);
    expect(results.filter((result) => result.outcome === 'not_under_review')).toHaveLength(7);
    expect(await ledgerOf(order)).toEqual(['adjustment:990']);
    expect(await balanceOf(order.accountId)).toBe(990);
    expect(await orderOf(order)).toMatchObject({ status: 'credited', reviewReason: null });
    const [resolution] = await db.prisma.reviewResolution.findMany({ where: { orderId: order.id } });
    expect(resolution).toMatchObject({
      decision: 'credit',
      amount: 990,
      resolvedBy: 'ops@test',
      note: 'customer paid 9.90; credit what was paid',
    });
    expect(await inboxStatus(short.id)).toBe('processed');
    // A redelivery of the settled event changes nothing.
    expect((await apply(short)).outcomes).toEqual(['already_applied']);
    expect(await balanceOf(order.accountId)).toBe(990);
  });

  it('dismisses a review without moving money, and refunds of the held payment never debit', async () => {
    const order = await paid(600);
    const second = { ...order, paymentIntentId: `pi_twice${order.id.slice(4, 14)}` };
    await apply(events.paymentIntent('succeeded', second));
    // The operator refunds the second payment at Stripe: the account never got that money.
    const refundOfSecond = events.refund('refund.created', second, { id: `re_t${order.id.slice(4, 16)}`, amount: 600 });
    expect((await apply(refundOfSecond)).outcomes).toEqual(['held']);
    const result = await resolveReview(db.prisma, {
      orderId: order.id,
      decision: 'dismiss',
      note: 'refunded the duplicate payment in the Dashboard',
      resolvedBy: 'ops',
    });
    expect(result).toMatchObject({ outcome: 'resolved', amount: 0, heldFacts: 2 });
    expect(await ledgerOf(order)).toEqual(['topup:600']);
    expect(await balanceOf(order.accountId)).toBe(600);
    expect(await orderOf(order)).toMatchObject({ status: 'credited', reviewReason: null });
  });
});

describe('one top-up per order', () => {
  it('is enforced by PostgreSQL: a second top-up for an order cannot be inserted', async () => {
    const order = await paid(100);
    const error = await db.prisma.$executeRaw`
      INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id)
      VALUES (${order.accountId}, 'topup', 100, 'usd', 'pi_another_one', ${order.id})`.catch((caught: unknown) => caught);
    expect(postgresErrorOf(error)).toEqual({ code: '23505', constraint: 'ledger_entries_one_topup_per_order' });
  });

  it('credits an order whose PaymentIntent id was never stored once, records the PaymentIntent, and holds every other payment', async () => {
    // PaymentIntent creation answered 5xx: the order has no PaymentIntent id, and three
    // PaymentIntents whose metadata names it get paid, at the same time.
    const order = await insertOrderFixture(db.prisma, newOrderFixture({ amount: 2_000 }));
    await db.prisma.order.update({ where: { id: order.id }, data: { paymentIntentId: null } });
    const payments = ['a', 'b', 'c'].map((suffix) =>
      events.paymentIntent('succeeded', { ...order, paymentIntentId: `pi_${suffix}${order.id.slice(4, 16)}` }),
    );
    const results = await Promise.all(payments.map((payment) => apply(payment)));
    expect(results.flatMap((result) => result.outcomes).sort()).toEqual(['applied', 'held', 'held']);
    expect(await ledgerOf(order)).toEqual(['topup:2000']);
    expect(await balanceOf(order.accountId)).toBe(2_000);
    const stored = await orderOf(order);
    const [topup] = await db.prisma.ledgerEntry.findMany({ where: { orderId: order.id } });
    expect(stored.paymentIntentId).toBe(topup!.reference);
    expect(stored.status).toBe('needs_review');
    expect(await db.prisma.heldFact.count({ where: { orderId: order.id, entryType: 'topup' } })).toBe(2);
  });

  it('finds the order of a refund through the top-up reference when the order never stored its PaymentIntent', async () => {
    const order = await insertOrderFixture(db.prisma, newOrderFixture({ amount: 900 }));
    await db.prisma.order.update({ where: { id: order.id }, data: { paymentIntentId: null } });
    // As a credit made before this release left it: the top-up, but no PaymentIntent on the order.
    await db.prisma.$transaction([
      db.prisma
        .$executeRaw`INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id) VALUES (${order.accountId}, 'topup', 900, 'usd', ${order.paymentIntentId}, ${order.id})`,
      db.prisma.$executeRaw`UPDATE accounts SET balance = balance + 900 WHERE id = ${order.accountId}`,
      db.prisma.$executeRaw`UPDATE orders SET status = 'credited' WHERE id = ${order.id}`,
    ]);
    await apply(events.refund('refund.created', order, { id: `re_l${order.id.slice(4, 16)}`, amount: 400 }));
    expect(await ledgerOf(order)).toEqual(['topup:900', 'refund:-400']);
    expect((await orderOf(order)).status).toBe('partially_refunded');
  });
});

describe('facts Stripe would never send', () => {
  it('credits only a PaymentIntent whose object says succeeded', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 300 });
    await apply(events.paymentIntent('succeeded', order, { status: 'requires_capture' }));
    expect(await ledgerOf(order)).toEqual([]);
    expect((await orderOf(order)).status).toBe('awaiting_payment');
  });

  it('holds a refund beyond what is left to refund, and a dispute in another currency', async () => {
    const order = await paid(1_000);
    await apply(events.refund('refund.created', order, { id: `re_a${order.id.slice(4, 16)}`, amount: 700 }));
    const beyond = events.refund('refund.created', order, { id: `re_b${order.id.slice(4, 16)}`, amount: 400 });
    expect((await apply(beyond)).outcomes).toEqual(['held']);
    // A duplicate of the refund that did go in is not "beyond": it is already applied.
    expect(
      (await apply(events.refund('charge.refund.updated', order, { id: `re_a${order.id.slice(4, 16)}`, amount: 700 }))).outcomes,
    ).toEqual(['already_applied']);
    const foreign = events.dispute('created', order, {
      id: `dp_x${order.id.slice(4, 16)}`,
      status: 'needs_response',
      currency: 'eur',
      amount: 300,
    });
    expect((await apply(foreign)).outcomes).toEqual(['held']);
    expect(await ledgerOf(order)).toEqual(['topup:1000', 'refund:-700']);
    expect((await orderOf(order)).status).toBe('needs_review');
    expect(await db.prisma.heldFact.count({ where: { orderId: order.id } })).toBe(2);
  });

  it('records events of PaymentIntents this system did not create as not ours, and applies nothing', async () => {
    const stranger = newOrderFixture({ amount: 450 });
    const noMetadata = events.paymentIntent('succeeded', stranger, { metadata: {} });
    const unknownOrder = events.paymentIntent('succeeded', { ...stranger, paymentIntentId: `pi_unknown${stranger.id.slice(4, 14)}` });
    const strangerRefund = events.refund('refund.created', stranger, { id: 're_stranger0001', amount: 450 });
    for (const stripeEvent of [noMetadata, unknownOrder, strangerRefund]) {
      expect((await apply(stripeEvent)).outcomes).toEqual(['not_ours']);
      expect(await inboxStatus(stripeEvent.id)).toBe('not_ours');
    }
    expect(await db.prisma.ledgerEntry.count({ where: { reference: { in: [stranger.paymentIntentId, 're_stranger0001'] } } })).toBe(0);
  });

  it("records a live-mode event in a test deployment, and a connected account's event, as not ours", async () => {
    const order = await createOrderFixture(db.prisma, { amount: 250 });
    const live = { ...events.paymentIntent('succeeded', order), livemode: true };
    const connected = { ...events.paymentIntent('succeeded', order), account: 'acct_1ConnectedElse' };
    for (const stripeEvent of [live, connected]) {
      expect((await apply(stripeEvent)).outcomes).toEqual(['not_ours']);
      expect(await inboxStatus(stripeEvent.id)).toBe('not_ours');
    }
    expect(await ledgerOf(order)).toEqual([]);
    // A connected account this deployment serves is applied.
    const served = await apply(connected, { livemode: false, connectedAccounts: new Set(['acct_1ConnectedElse']) });
    expect(served.outcomes).toEqual(['applied']);
  });
});

describe('an account has one currency', () => {
  it('is fixed by its first credited order, not by an unpaid one', async () => {
    const accountId = `acct_cur${Date.now()}`;
    const unpaidYen = await createOrderFixture(db.prisma, { accountId, currency: 'jpy', amount: 500 });
    const dollars = await createOrderFixture(db.prisma, { accountId, currency: 'usd', amount: 1_500 });
    expect((await db.prisma.account.findUniqueOrThrow({ where: { id: accountId } })).currency).toBe('jpy');
    await apply(events.paymentIntent('succeeded', dollars));
    expect(await db.prisma.account.findUniqueOrThrow({ where: { id: accountId } })).toMatchObject({ currency: 'usd', balance: 1_500n });
    // The yen order paid later cannot mix currencies in one balance: held for an operator.
    await apply(events.paymentIntent('succeeded', unpaidYen));
    expect(await ledgerOf(unpaidYen)).toEqual([]);
    expect((await orderOf(unpaidYen)).reviewReason).toMatch(/holds usd/);
  });

  it('is enforced by PostgreSQL: an entry in another currency than its account cannot be inserted', async () => {
    const order = await paid(100);
    const error = await db.prisma.$executeRaw`
      INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id)
      VALUES (${order.accountId}, 'refund', -10, 'eur', 're_other_currency', ${order.id})`.catch((caught: unknown) => caught);
    expect(postgresErrorOf(error)).toEqual({ code: '23503', constraint: 'ledger_entries_account_id_currency_fkey' });
  });
});

describe('a sync', () => {
  it('expires an order whose PaymentIntent this system canceled at ORDER_TTL', async () => {
    const order = await createOrderFixture(db.prisma);
    await applyPaymentFacts(db.prisma, [
      { kind: 'payment_progress', paymentIntentId: order.paymentIntentId, orderId: order.id, to: 'expired' },
    ]);
    expect((await orderOf(order)).status).toBe('expired');
    // Paid before the cancel reached Stripe: the credit wins.
    await apply(events.paymentIntent('succeeded', order));
    expect((await orderOf(order)).status).toBe('credited');
  });
});
