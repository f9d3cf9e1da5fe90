import { withTransaction, type Prisma, type PrismaClient } from '@ledger/shared';
import { claimEvent, eventStatusOf, settleEvent } from './inbox.js';
import { lockAccountAndOrder, lockOrder, moveOrder } from './orders.js';
import { hasEntry, holdFact, isHeld, post } from './postings.js';
import * as statements from './statements.js';
import type { AccountRow, ApplyResult, EventSource, FactResult, LocatedOrder, OrderRow, PaymentFact, PaymentSucceeded } from './types.js';

type Tx = Prisma.TransactionClient;

// The general path: every kind of fact, decided one by one in ONE PostgreSQL transaction with the
// rows locked. (apply.ts sends the common case, a payment that matches its order, through the
// group-commit statement first; whatever that statement does not decide comes here.)

/**
 * Applies the facts of one event (or of one sync) in ONE PostgreSQL transaction:
 * 1. claim the event in the inbox (a processed event id means: already done, stop);
 * 2. per fact, lock the account, then the order (one lock order everywhere: no deadlocks), decide,
 *    and post the ledger entry (ON CONFLICT DO NOTHING: zero rows means already applied and
 *    nothing after it runs, since the conflict check comes before the balance moves);
 * 3. move the balance and the order; a fact that cannot be applied on its own is held for an
 *    operator (held_facts), never dropped and never posted blindly;
 * 4. record what happened to the event: processed, duplicate, held or not ours.
 * Unique keys in PostgreSQL are the guarantee; job ids only save work.
 */
export async function applyFactsInTransaction(prisma: PrismaClient, facts: PaymentFact[], source?: EventSource): Promise<ApplyResult> {
  return withTransaction(prisma, async (tx) => {
    if (source && !(await claimEvent(tx, source))) {
      return { eventIsNew: false, outcomes: facts.map(() => 'already_applied' as const), details: [], credited: 0 };
    }
    const results: FactResult[] = [];
    for (const fact of facts) results.push(await applyFact(tx, fact, source?.id ?? null));
    const details = results.flatMap((result) => (result.detail ? [result.detail] : []));
    if (source) await settleEvent(tx, source.id, eventStatusOf(results), details);
    const credited = results.filter((result, index) => result.outcome === 'applied' && facts[index]?.kind === 'payment_succeeded').length;
    const order = results.find((result) => result.order)?.order;
    return { eventIsNew: true, outcomes: results.map((result) => result.outcome), details, credited, ...(order ? { order } : {}) };
  });
}

/**
 * The order a fact is about, and its account. A payment names its order in metadata (an unknown
 * order id is another deployment's: this system commits the order before creating its
 * PaymentIntent); otherwise the PaymentIntent leads to it: the order that owns it, the order its
 * top-up credited, or the order one of its payments is held for. Nothing found: not ours.
 */
async function locateOrder(tx: Tx, fact: PaymentFact): Promise<LocatedOrder | undefined> {
  const orderId = fact.kind === 'payment_succeeded' || fact.kind === 'payment_progress' ? fact.orderId : undefined;
  const [order] = await tx.$queryRaw<LocatedOrder[]>(
    orderId ? statements.orderById(orderId) : statements.orderOfPaymentIntent(fact.paymentIntentId),
  );
  return order;
}

async function applyFact(tx: Tx, fact: PaymentFact, eventId: string | null): Promise<FactResult> {
  const located = await locateOrder(tx, fact);
  if (!located) return { outcome: 'not_ours', detail: notOursDetail(fact) };
  return { ...(await decideFact(tx, fact, located, eventId)), order: { orderId: located.id, accountId: located.account_id } };
}

async function decideFact(tx: Tx, fact: PaymentFact, located: LocatedOrder, eventId: string | null): Promise<FactResult> {
  switch (fact.kind) {
    case 'payment_succeeded':
      return applyPayment(tx, fact, located, eventId);
    case 'payment_progress': {
      // Progress alone moves no money: the order's lock is enough.
      const order = await lockOrder(tx, located.id);
      // A failed or canceled attempt of some other PaymentIntent naming the order says nothing about it.
      if (order.payment_intent_id !== null && order.payment_intent_id !== fact.paymentIntentId) return { outcome: 'ignored' };
      return (await moveOrder(tx, order, { kind: 'progress', to: fact.to })) ? { outcome: 'status_only' } : { outcome: 'ignored' };
    }
    case 'refund':
      return applyRefund(tx, fact, located, eventId);
    case 'dispute':
      return applyDispute(tx, fact, located, eventId);
  }
}

function notOursDetail(fact: PaymentFact): string {
  const orderId = fact.kind === 'payment_succeeded' || fact.kind === 'payment_progress' ? fact.orderId : undefined;
  return orderId
    ? `PaymentIntent ${fact.paymentIntentId} names order ${orderId}, which this system does not have`
    : `PaymentIntent ${fact.paymentIntentId} belongs to no order of this system`;
}

async function applyPayment(tx: Tx, fact: PaymentSucceeded, located: LocatedOrder, eventId: string | null): Promise<FactResult> {
  // An account whose currency may have to follow this first credit is locked FOR UPDATE: a
  // concurrent credit's foreign-key lock then makes one of them wait instead of deadlocking.
  const [peek] = await tx.$queryRaw<AccountRow[]>(statements.readAccount(located.account_id));
  const { account, order } = await lockAccountAndOrder(tx, located.account_id, located.id, peek?.currency !== fact.currency);
  const topup = { type: 'topup', reference: fact.paymentIntentId, amount: fact.amount, currency: fact.currency } as const;
  const hold = (reason: string) => holdFact(tx, order, topup, reason, eventId);

  if (await hasEntry(tx, account.id, 'topup', fact.paymentIntentId)) return { outcome: 'already_applied' };
  if (fact.amount !== order.amount || fact.currency !== order.currency) {
    return hold(`paid ${fact.amount} ${fact.currency} through ${fact.paymentIntentId}, the order is ${order.amount} ${order.currency}`);
  }
  const [credited] = await tx.$queryRaw<{ reference: string }[]>(statements.topupOfOrder(order.id));
  const orderPaymentIntent = credited?.reference ?? order.payment_intent_id;
  if (orderPaymentIntent !== null && orderPaymentIntent !== fact.paymentIntentId) {
    return hold(
      `a second PaymentIntent ${fact.paymentIntentId} paid the order (its own is ${orderPaymentIntent}): the customer paid twice, refund one`,
    );
  }
  if (order.payment_intent_id === null) {
    const [owner] = await tx.$queryRaw<{ id: string }[]>(statements.orderOwningPaymentIntent(fact.paymentIntentId));
    if (owner) return hold(`PaymentIntent ${fact.paymentIntentId} names this order but belongs to order ${owner.id}`);
  }
  if (account.currency !== order.currency) {
    const [entry] = await tx.$queryRaw<{ id: bigint }[]>(statements.anyEntryOfAccount(account.id));
    if (entry) return hold(`account ${account.id} holds ${account.currency}; this payment is in ${order.currency}`);
    // No entry yet: the first credited order fixes the account's currency (an unpaid order does not).
    await tx.$executeRaw(statements.setAccountCurrency(account.id, order.currency));
  }
  if (!(await post(tx, { ...topup, accountId: account.id, currency: order.currency, orderId: order.id, eventId }))) {
    return (await hasEntry(tx, account.id, 'topup', fact.paymentIntentId))
      ? { outcome: 'already_applied' }
      : hold(`a second PaymentIntent ${fact.paymentIntentId} paid the order: the customer paid twice, refund one`);
  }
  await moveOrder(tx, order, { kind: 'progress', to: 'paid' }, fact.paymentIntentId);
  return { outcome: 'applied' };
}

/**
 * Whether the PaymentIntent behind a refund or dispute credited the order: its top-up is in the
 * ledger, an operator credited its held payment, or it is the order's own PaymentIntent and no
 * payment of it was held (its success may simply not have arrived yet). Otherwise the debit would
 * take back money the account never got.
 */
async function paymentCredited(tx: Tx, order: OrderRow, paymentIntentId: string): Promise<boolean> {
  if (await hasEntry(tx, order.account_id, 'topup', paymentIntentId)) return true;
  const [held] = await tx.$queryRaw<{ decision: string | null }[]>(statements.heldPaymentDecision(order.id, paymentIntentId));
  if (held) return held.decision === 'credit';
  return order.payment_intent_id === paymentIntentId;
}

/** A debit that can come back: a refund (failed or canceled afterwards), a dispute (won). */
interface ReversibleDebit {
  debit: 'refund' | 'dispute';
  reversal: 'refund_reversal' | 'dispute_reversal';
  /** The refund or dispute id: both entries carry it. */
  reference: string;
  paymentIntentId: string;
  /** The magnitude: the debit takes it, the reversal gives it back (postings.ts signs them). */
  amount: number;
  currency: string;
  /** The money came back (refund failed or canceled, dispute won). */
  reversed: boolean;
  /** Only what is left to refund can be refunded (disputes are not limited this way). */
  limitToLeft: boolean;
}

/**
 * Posts a debit and, when it came back, its reversal, each once under its own entry type and the
 * same reference. Held instead when the payment behind it was never credited, or the currency is
 * not the order's, or (refunds) it is more than is left to refund. A debit we never saw is
 * recorded with its reversal, so any arrival order nets to zero; a debit that is held keeps its
 * reversal held too, so an operator's resolution nets them and never posts the debit alone.
 */
async function applyReversibleDebit(
  tx: Tx,
  located: LocatedOrder,
  item: ReversibleDebit,
  eventId: string | null,
): Promise<{ result: FactResult; order: OrderRow; debited: boolean; reversed: boolean }> {
  const { order } = await lockAccountAndOrder(tx, located.account_id, located.id);
  const done = (result: FactResult, debited = false, reversed = false) => ({ result, order, debited, reversed });
  const entry = (type: ReversibleDebit['debit'] | ReversibleDebit['reversal']) =>
    ({ type, reference: item.reference, amount: item.amount, currency: item.currency }) as const;
  const hold = async (reason: string) => done(await holdFact(tx, order, entry(item.debit), reason, eventId));
  if (!(await paymentCredited(tx, order, item.paymentIntentId))) {
    return hold(`${item.debit} ${item.reference} of ${item.paymentIntentId}, a payment that was never credited`);
  }
  if (item.currency !== order.currency)
    return hold(`${item.debit} ${item.reference} in ${item.currency}, the order is in ${order.currency}`);
  if (item.reversed && (await isHeld(tx, order.id, item.debit, item.reference))) {
    const reason = `${item.debit} ${item.reference} came back; its debit is held`;
    return done(await holdFact(tx, order, entry(item.reversal), reason, eventId));
  }
  if (!item.reversed && item.limitToLeft && !(await hasEntry(tx, order.account_id, item.debit, item.reference))) {
    const left = order.amount - order.amount_refunded;
    if (item.amount > left) return hold(`${item.debit} ${item.reference} of ${item.amount} is more than the ${left} left to refund`);
  }
  const posting = (type: ReversibleDebit['debit'] | ReversibleDebit['reversal']) => ({
    ...entry(type),
    accountId: order.account_id,
    currency: order.currency,
    orderId: order.id,
    eventId,
  });
  const debited = await post(tx, posting(item.debit));
  const reversed = item.reversed ? await post(tx, posting(item.reversal)) : false;
  return done({ outcome: debited || reversed ? 'applied' : 'already_applied' }, debited, reversed);
}

async function applyRefund(
  tx: Tx,
  fact: Extract<PaymentFact, { kind: 'refund' }>,
  located: LocatedOrder,
  eventId: string | null,
): Promise<FactResult> {
  const { result, order, debited, reversed } = await applyReversibleDebit(
    tx,
    located,
    {
      debit: 'refund',
      reversal: 'refund_reversal',
      reference: fact.refundId,
      paymentIntentId: fact.paymentIntentId,
      amount: fact.amount,
      currency: fact.currency,
      reversed: fact.status === 'reversed',
      limitToLeft: true,
    },
    eventId,
  );
  const delta = (debited ? fact.amount : 0) - (reversed ? fact.amount : 0);
  if (delta !== 0) await moveOrder(tx, order, { kind: 'refunded', amount: delta });
  return result;
}

async function applyDispute(
  tx: Tx,
  fact: Extract<PaymentFact, { kind: 'dispute' }>,
  located: LocatedOrder,
  eventId: string | null,
): Promise<FactResult> {
  // Stripe withdraws the disputed amount (a dispute may be for less than the charge) and gives it
  // back if the dispute is won, so the debit is keyed by the dispute id and a reinstatement adds a
  // reversal under the same id. A dispute first heard of as reinstated still gets its debit (events
  // arrive in any order); one that has withdrawn nothing moves only the order.
  const funds = fact.funds ?? (fact.to === 'won' ? 'reinstated' : 'withdrawn');
  if (funds === 'none') {
    const { order } = await lockAccountAndOrder(tx, located.account_id, located.id);
    return (await moveOrder(tx, order, { kind: 'dispute', to: fact.to })) ? { outcome: 'status_only' } : { outcome: 'already_applied' };
  }
  const { result, order } = await applyReversibleDebit(
    tx,
    located,
    {
      debit: 'dispute',
      reversal: 'dispute_reversal',
      reference: fact.disputeId,
      paymentIntentId: fact.paymentIntentId,
      amount: fact.amount,
      currency: fact.currency,
      reversed: funds === 'reinstated',
      limitToLeft: false,
    },
    eventId,
  );
  if (result.outcome === 'held') return result;
  const moved = await moveOrder(tx, order, { kind: 'dispute', to: fact.to });
  return result.outcome === 'already_applied' && moved ? { outcome: 'status_only' } : result;
}
