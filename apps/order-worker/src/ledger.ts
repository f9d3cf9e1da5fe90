import { postgresErrorOf, withTransaction, type LedgerEntryType, type Prisma, type PrismaClient } from '@ledger/shared';
import { CreditBatcher, type CreditBatcherOptions } from './credit-batcher.js';
import {
  CREDIT_PAYMENTS_SQL,
  REFUSALS_FOR_THE_GENERAL_PATH,
  creditPaymentsParams,
  creditResultOf,
  type PaymentCredit,
  type PaymentCreditResult,
} from './credit-statement.js';
import { nextOrderState, type OrderChange, type OrderState } from './order-status.js';
import type { PaymentFact } from './payment-facts.js';

type Tx = Prisma.TransactionClient;

/** What applying one fact did. */
export type FactOutcome =
  /** A ledger entry went in and the balance moved. */
  | 'applied'
  /** The ledger already had it (or an operator already settled it): nothing changed. */
  | 'already_applied'
  /** The fact moves no money (a failed or canceled payment, a dispute lost): only the order moved. */
  | 'status_only'
  /** Nothing to do: e.g. a failed attempt of a PaymentIntent that is not the order's own. */
  | 'ignored'
  /** Recorded as held for an operator (held_facts) and the order flagged `needs_review`; no money moved. */
  | 'held'
  /** About no order of this system (another integration's or deployment's PaymentIntent). */
  | 'not_ours';

export interface FactResult {
  outcome: FactOutcome;
  /** Why a fact was held or is not ours. */
  detail?: string;
}

/** The Stripe event a set of facts came from; recorded in the inbox in the same transaction. */
export interface EventSource {
  id: string;
  type: string;
  objectId: string | null;
  /** Stripe's `created`, unix seconds. */
  created: number;
}

/** What the inbox says about an event once its facts were applied. */
export type EventStatus = 'processed' | 'duplicate' | 'held' | 'not_ours';

export interface ApplyResult {
  /** False when the event was already processed: nothing was looked at again. */
  eventIsNew: boolean;
  outcomes: FactOutcome[];
  /** Reasons of held / not-ours facts. */
  details: string[];
  /** Top-up credits this call made, for the created → credited histogram. */
  credited: number;
}

interface OrderRow {
  id: string;
  account_id: string;
  amount: number;
  currency: string;
  status: OrderState['status'];
  payment_intent_id: string | null;
  amount_refunded: number;
  dispute_status: string | null;
  review_reason: string | null;
}

interface AccountRow {
  id: string;
  currency: string;
}

/**
 * Applies the facts of one event (or of one sync) in ONE PostgreSQL transaction:
 * 1. claim the event in the inbox (a processed event id means: already done, stop);
 * 2. per fact, lock the account, then the order (one lock order everywhere: no deadlocks), decide,
 *    and insert the ledger entry with ON CONFLICT DO NOTHING — zero rows means already applied and
 *    nothing after it runs (the conflict check comes before the balance moves);
 * 3. move the balance and the order; a fact that cannot be applied on its own is held for an
 *    operator (held_facts), never dropped and never posted blindly;
 * 4. record what happened to the event: processed, duplicate, held or not ours.
 * Unique keys in PostgreSQL are the guarantee; job ids only save work.
 */
export async function applyPaymentFacts(prisma: PrismaClient, facts: PaymentFact[], source?: EventSource): Promise<ApplyResult> {
  const [only] = facts;
  if (facts.length === 1 && only?.kind === 'payment_succeeded') {
    const result = await creditInOneStatement(prisma, only, source);
    if (result) return result;
  }
  return withTransaction(prisma, async (tx) => {
    if (source && !(await claimEvent(tx, source))) {
      return { eventIsNew: false, outcomes: facts.map(() => 'already_applied' as const), details: [], credited: 0 };
    }
    const results: FactResult[] = [];
    for (const fact of facts) results.push(await applyFact(tx, fact, source?.id ?? null));
    const status = eventStatusOf(results);
    const details = results.flatMap((result) => (result.detail ? [result.detail] : []));
    // The claim recorded the event as processed; anything else is written once here.
    if (source && status !== 'processed') {
      await tx.$executeRaw`UPDATE stripe_events SET status = ${status}::"StripeEventStatus", detail = ${details.join('; ') || null} WHERE id = ${source.id}`;
    }
    const credited = results.filter((result, index) => result.outcome === 'applied' && facts[index]?.kind === 'payment_succeeded').length;
    return { eventIsNew: true, outcomes: results.map((result) => result.outcome), details, credited };
  });
}

/** The inbox status of an event whose facts had these results. Held beats everything: it is not done. */
export function eventStatusOf(results: FactResult[]): EventStatus {
  if (results.some((result) => result.outcome === 'held')) return 'held';
  if (results.length > 0 && results.every((result) => result.outcome === 'not_ours')) return 'not_ours';
  if (results.length > 0 && results.every((result) => result.outcome === 'already_applied')) return 'duplicate';
  return 'processed';
}

/**
 * Runs {@link CREDIT_PAYMENTS_SQL}. Returns the result of each payment, in order, or undefined when
 * PostgreSQL refused one of them (nothing was written: the statement is atomic).
 */
export async function creditPayments(prisma: PrismaClient, credits: readonly PaymentCredit[]): Promise<PaymentCreditResult[] | undefined> {
  let rows: { n: bigint; eligible: boolean; inserted: boolean; event_new: boolean }[];
  try {
    rows = await prisma.$queryRawUnsafe(CREDIT_PAYMENTS_SQL, ...creditPaymentsParams(credits));
  } catch (error) {
    const refused = postgresErrorOf(error)?.constraint;
    if (refused !== undefined && REFUSALS_FOR_THE_GENERAL_PATH.has(refused)) return undefined;
    throw error;
  }
  return rows.map((row) => ({ eligible: row.eligible, inserted: row.inserted, eventNew: row.event_new }));
}

/** The common case of one payment through the batched statement: a batch of one. */
async function creditInOneStatement(
  prisma: PrismaClient,
  fact: Extract<PaymentFact, { kind: 'payment_succeeded' }>,
  source: EventSource | undefined,
): Promise<ApplyResult | undefined> {
  const credit = { fact, source };
  return creditResultOf(credit, (await creditPayments(prisma, [credit]))?.[0]);
}

/**
 * Inserts the event into the inbox, or takes over a row a failed attempt left or a held event
 * (held facts are looked at again: an operator may have fixed the cause). Returns false when the
 * event was already done. Concurrent claims of one id wait on the row and then see it done.
 */
async function claimEvent(tx: Tx, source: EventSource): Promise<boolean> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    INSERT INTO stripe_events (id, type, object_id, status, attempts, stripe_created_at, received_at, processed_at)
    VALUES (${source.id}, ${source.type}, ${source.objectId}, 'processed', 1, to_timestamp(${source.created}), now(), now())
    ON CONFLICT (id) DO UPDATE
      SET status = 'processed', attempts = stripe_events.attempts + 1, last_error = NULL, detail = NULL, processed_at = now()
      WHERE stripe_events.status IN ('failed', 'held')
    RETURNING id`;
  return rows.length > 0;
}

/** Records a failed attempt outside the (rolled back) transaction, so operators see it. */
export async function recordEventFailure(prisma: PrismaClient, source: EventSource, error: string): Promise<void> {
  await prisma.$executeRaw`
    INSERT INTO stripe_events (id, type, object_id, status, attempts, last_error, stripe_created_at, received_at)
    VALUES (${source.id}, ${source.type}, ${source.objectId}, 'failed', 1, ${error}, to_timestamp(${source.created}), now())
    ON CONFLICT (id) DO UPDATE
      SET attempts = stripe_events.attempts + 1, last_error = EXCLUDED.last_error
      WHERE stripe_events.status = 'failed'`;
}

/** Records an event that is not this deployment's (another mode, a connected account) as such. */
export async function recordEventNotOurs(prisma: PrismaClient, source: EventSource, reason: string): Promise<boolean> {
  const inserted = await prisma.$executeRaw`
    INSERT INTO stripe_events (id, type, object_id, status, attempts, detail, stripe_created_at, received_at, processed_at)
    VALUES (${source.id}, ${source.type}, ${source.objectId}, 'not_ours', 1, ${reason}, to_timestamp(${source.created}), now(), now())
    ON CONFLICT (id) DO NOTHING`;
  return inserted > 0;
}

/**
 * The order a fact is about, and its account. A payment names its order in metadata (an unknown
 * order id is another deployment's: this system commits the order before creating its
 * PaymentIntent); otherwise the PaymentIntent leads to it: the order that owns it, the order its
 * top-up credited, or the order one of its payments is held for. Nothing found: not ours.
 */
async function locateOrder(tx: Tx, fact: PaymentFact): Promise<{ id: string; account_id: string } | undefined> {
  const orderId = fact.kind === 'payment_succeeded' || fact.kind === 'payment_progress' ? fact.orderId : undefined;
  if (orderId) {
    const [order] = await tx.$queryRaw<{ id: string; account_id: string }[]>`SELECT id, account_id FROM orders WHERE id = ${orderId}`;
    return order;
  }
  const [order] = await tx.$queryRaw<{ id: string; account_id: string }[]>`
    (SELECT id, account_id FROM orders WHERE payment_intent_id = ${fact.paymentIntentId})
    UNION ALL
    (SELECT order_id, account_id FROM ledger_entries WHERE entry_type = 'topup' AND reference = ${fact.paymentIntentId} AND order_id IS NOT NULL)
    UNION ALL
    (SELECT order_id, account_id FROM held_facts WHERE entry_type = 'topup' AND reference = ${fact.paymentIntentId})
    LIMIT 1`;
  return order;
}

/**
 * Locks the account, then the order: every money path takes them in this order. FOR NO KEY UPDATE,
 * not FOR UPDATE: a ledger insert holds a KEY SHARE lock on both rows through its foreign keys,
 * which FOR UPDATE would wait for — a deadlock with a concurrent fact (found by the shuffle
 * property test). `forKeyUpdate` is for the rare currency change, which updates the account's key.
 */
export async function lockAccountAndOrder(
  tx: Tx,
  accountId: string,
  orderId: string,
  forKeyUpdate = false,
): Promise<{ account: AccountRow; order: OrderRow }> {
  const [account] = forKeyUpdate
    ? await tx.$queryRaw<AccountRow[]>`SELECT id, currency FROM accounts WHERE id = ${accountId} FOR UPDATE`
    : await tx.$queryRaw<AccountRow[]>`SELECT id, currency FROM accounts WHERE id = ${accountId} FOR NO KEY UPDATE`;
  const order = await lockOrder(tx, orderId);
  if (!account) throw new Error(`account ${accountId} of order ${orderId} vanished`);
  return { account, order };
}

/** Locks the order's row (after its account's, where money moves) and reads it. */
async function lockOrder(tx: Tx, orderId: string): Promise<OrderRow> {
  const [order] = await tx.$queryRaw<OrderRow[]>`
    SELECT id, account_id, amount, currency, status, payment_intent_id, amount_refunded, dispute_status, review_reason
    FROM orders WHERE id = ${orderId} FOR NO KEY UPDATE`;
  if (!order) throw new Error(`order ${orderId} vanished`);
  return order;
}

async function applyFact(tx: Tx, fact: PaymentFact, eventId: string | null): Promise<FactResult> {
  const located = await locateOrder(tx, fact);
  if (!located) return { outcome: 'not_ours', detail: notOursDetail(fact) };
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

async function applyPayment(
  tx: Tx,
  fact: Extract<PaymentFact, { kind: 'payment_succeeded' }>,
  located: { id: string; account_id: string },
  eventId: string | null,
): Promise<FactResult> {
  // An account whose currency may have to follow this first credit is locked FOR UPDATE: a
  // concurrent credit's foreign-key lock then makes one of them wait instead of deadlocking.
  const [peek] = await tx.$queryRaw<AccountRow[]>`SELECT id, currency FROM accounts WHERE id = ${located.account_id}`;
  const { account, order } = await lockAccountAndOrder(tx, located.account_id, located.id, peek?.currency !== fact.currency);
  const hold = (reason: string) => holdFact(tx, order, 'topup', fact.paymentIntentId, fact.amount, fact.currency, reason, eventId);

  if (await hasEntry(tx, account.id, 'topup', fact.paymentIntentId)) return { outcome: 'already_applied' };
  if (fact.amount !== order.amount || fact.currency !== order.currency) {
    return hold(`paid ${fact.amount} ${fact.currency} through ${fact.paymentIntentId}, the order is ${order.amount} ${order.currency}`);
  }
  const [topup] = await tx.$queryRaw<{ reference: string }[]>`
    SELECT reference FROM ledger_entries WHERE order_id = ${order.id} AND entry_type = 'topup'`;
  const orderPaymentIntent = topup?.reference ?? order.payment_intent_id;
  if (orderPaymentIntent !== null && orderPaymentIntent !== fact.paymentIntentId) {
    return hold(
      `a second PaymentIntent ${fact.paymentIntentId} paid the order (its own is ${orderPaymentIntent}): the customer paid twice, refund one`,
    );
  }
  if (order.payment_intent_id === null) {
    const [owner] = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM orders WHERE payment_intent_id = ${fact.paymentIntentId}`;
    if (owner) return hold(`PaymentIntent ${fact.paymentIntentId} names this order but belongs to order ${owner.id}`);
  }
  if (account.currency !== order.currency) {
    const [entry] = await tx.$queryRaw<{ id: bigint }[]>`SELECT id FROM ledger_entries WHERE account_id = ${account.id} LIMIT 1`;
    if (entry) return hold(`account ${account.id} holds ${account.currency}; this payment is in ${order.currency}`);
    // No entry yet: the first credited order fixes the account's currency (an unpaid order does not).
    await tx.$executeRaw`UPDATE accounts SET currency = ${order.currency}, updated_at = now() WHERE id = ${account.id}`;
  }
  if (!(await insertLedgerEntry(tx, order, 'topup', fact.paymentIntentId, fact.amount, eventId))) {
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
  const [held] = await tx.$queryRaw<{ decision: string | null }[]>`
    SELECT r.decision::text AS decision FROM held_facts h LEFT JOIN review_resolutions r ON r.id = h.resolution_id
    WHERE h.order_id = ${order.id} AND h.entry_type = 'topup' AND h.reference = ${paymentIntentId}`;
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
  located: { id: string; account_id: string },
  item: ReversibleDebit,
  eventId: string | null,
): Promise<{ result: FactResult; order: OrderRow; debited: boolean; reversed: boolean }> {
  const { order } = await lockAccountAndOrder(tx, located.account_id, located.id);
  const done = (result: FactResult, debited = false, reversed = false) => ({ result, order, debited, reversed });
  const hold = async (reason: string) =>
    done(await holdFact(tx, order, item.debit, item.reference, -item.amount, item.currency, reason, eventId));
  if (!(await paymentCredited(tx, order, item.paymentIntentId))) {
    return hold(`${item.debit} ${item.reference} of ${item.paymentIntentId}, a payment that was never credited`);
  }
  if (item.currency !== order.currency)
    return hold(`${item.debit} ${item.reference} in ${item.currency}, the order is in ${order.currency}`);
  if (item.reversed && (await isHeld(tx, order.id, item.debit, item.reference))) {
    const reason = `${item.debit} ${item.reference} came back; its debit is held`;
    return done(await holdFact(tx, order, item.reversal, item.reference, item.amount, item.currency, reason, eventId));
  }
  if (!item.reversed && item.limitToLeft && !(await hasEntry(tx, order.account_id, item.debit, item.reference))) {
    const left = order.amount - order.amount_refunded;
    if (item.amount > left) return hold(`${item.debit} ${item.reference} of ${item.amount} is more than the ${left} left to refund`);
  }
  const debited = await insertLedgerEntry(tx, order, item.debit, item.reference, -item.amount, eventId);
  const reversed = item.reversed ? await insertLedgerEntry(tx, order, item.reversal, item.reference, item.amount, eventId) : false;
  return done({ outcome: debited || reversed ? 'applied' : 'already_applied' }, debited, reversed);
}

async function applyRefund(
  tx: Tx,
  fact: Extract<PaymentFact, { kind: 'refund' }>,
  located: { id: string; account_id: string },
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
  located: { id: string; account_id: string },
  eventId: string | null,
): Promise<FactResult> {
  // Stripe takes the disputed amount when the dispute opens and gives it back if it is won, so
  // the debit is keyed by the dispute id and a won close adds a reversal under the same id.
  // A dispute we first hear of as closed still gets its debit (events can arrive in any order).
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
      reversed: fact.to === 'won',
      limitToLeft: false,
    },
    eventId,
  );
  if (result.outcome === 'held') return result;
  const moved = await moveOrder(tx, order, { kind: 'dispute', to: fact.to });
  return result.outcome === 'already_applied' && moved ? { outcome: 'status_only' } : result;
}

async function hasEntry(tx: Tx, accountId: string, entryType: LedgerEntryType, reference: string): Promise<boolean> {
  const rows = await tx.$queryRaw<{ id: bigint }[]>`
    SELECT id FROM ledger_entries WHERE account_id = ${accountId} AND entry_type = ${entryType}::"LedgerEntryType" AND reference = ${reference}`;
  return rows.length > 0;
}

async function isHeld(tx: Tx, orderId: string, entryType: LedgerEntryType, reference: string): Promise<boolean> {
  const rows = await tx.$queryRaw<{ id: bigint }[]>`
    SELECT id FROM held_facts WHERE order_id = ${orderId} AND entry_type = ${entryType}::"LedgerEntryType" AND reference = ${reference}`;
  return rows.length > 0;
}

/**
 * Records a fact for an operator and flags the order. Idempotent per (order, entry type,
 * reference): a fact already held stays held; one an operator already settled is done.
 */
async function holdFact(
  tx: Tx,
  order: OrderRow,
  entryType: LedgerEntryType,
  reference: string,
  amount: number,
  currency: string,
  reason: string,
  eventId: string | null,
): Promise<FactResult> {
  const inserted = await tx.$queryRaw<{ id: bigint }[]>`
    INSERT INTO held_facts (order_id, account_id, entry_type, reference, amount, currency, reason, stripe_event_id)
    VALUES (${order.id}, ${order.account_id}, ${entryType}::"LedgerEntryType", ${reference}, ${amount}, ${currency}, ${reason}, ${eventId})
    ON CONFLICT (order_id, entry_type, reference) DO NOTHING
    RETURNING id`;
  if (inserted.length > 0) {
    await moveOrder(tx, order, { kind: 'review', reason });
    return { outcome: 'held', detail: reason };
  }
  const [existing] = await tx.$queryRaw<{ resolution_id: string | null; reason: string }[]>`
    SELECT resolution_id, reason FROM held_facts WHERE order_id = ${order.id} AND entry_type = ${entryType}::"LedgerEntryType" AND reference = ${reference}`;
  return existing?.resolution_id ? { outcome: 'already_applied' } : { outcome: 'held', detail: existing?.reason ?? reason };
}

/**
 * Inserts one ledger entry and, only if it went in, moves the balance. Returns whether it went in.
 * ON CONFLICT DO NOTHING (any unique key) instead of catching P2002: an error aborts the whole
 * PostgreSQL transaction, a skipped insert does not.
 */
export async function insertLedgerEntry(
  tx: Tx,
  order: Pick<OrderRow, 'id' | 'account_id' | 'currency'>,
  entryType: LedgerEntryType,
  reference: string,
  amount: number,
  eventId: string | null,
): Promise<boolean> {
  const inserted = await tx.$executeRaw`
    INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id, stripe_event_id)
    VALUES (${order.account_id}, ${entryType}::"LedgerEntryType", ${amount}, ${order.currency}, ${reference}, ${order.id}, ${eventId})
    ON CONFLICT DO NOTHING`;
  if (inserted === 0) return false;
  await tx.$executeRaw`UPDATE accounts SET balance = balance + ${amount}, updated_at = now() WHERE id = ${order.account_id}`;
  return true;
}

/** Whether the order has a credit: a top-up, or an operator's resolution that credited it. */
async function orderCredited(tx: Tx, orderId: string): Promise<boolean> {
  const rows = await tx.$queryRaw<{ id: bigint }[]>`
    SELECT id FROM ledger_entries WHERE order_id = ${orderId} AND (entry_type = 'topup' OR (entry_type = 'adjustment' AND amount > 0)) LIMIT 1`;
  return rows.length > 0;
}

/**
 * Writes the order's next state (the caller holds its lock and passes the row it read). Updates the
 * row in place, so later facts of the same transaction start from it. Returns whether it changed.
 */
export async function moveOrder(tx: Tx, order: OrderRow, change: OrderChange, paymentIntentId?: string): Promise<boolean> {
  const current: OrderState = {
    status: order.status,
    amount: order.amount,
    amountRefunded: order.amount_refunded,
    disputeStatus: order.dispute_status,
    reviewReason: order.review_reason,
  };
  const credited = order.status === 'needs_review' ? await orderCredited(tx, order.id) : false;
  const next = nextOrderState(current, change, credited);
  const newPaymentIntent = order.payment_intent_id === null && paymentIntentId !== undefined;
  if (
    !newPaymentIntent &&
    next.status === current.status &&
    next.amountRefunded === current.amountRefunded &&
    next.disputeStatus === current.disputeStatus &&
    next.reviewReason === current.reviewReason
  ) {
    return false;
  }
  const payment = newPaymentIntent ? paymentIntentId : order.payment_intent_id;
  await tx.$executeRaw`
    UPDATE orders
    SET status = ${next.status}::"OrderStatus", amount_refunded = ${next.amountRefunded},
        dispute_status = ${next.disputeStatus}, review_reason = ${next.reviewReason},
        payment_intent_id = ${payment}, updated_at = now()
    WHERE id = ${order.id}`;
  Object.assign(order, {
    status: next.status,
    amount_refunded: next.amountRefunded,
    dispute_status: next.disputeStatus,
    review_reason: next.reviewReason,
    payment_intent_id: payment,
  });
  return true;
}

export type { OrderRow, PaymentCredit };

/**
 * A batcher of this process's payments on `prisma` (group commit); `maxBatch` 1 turns batching off.
 */
export function createCreditBatcher(
  prisma: PrismaClient,
  options: Omit<CreditBatcherOptions, 'execute' | 'resultOf' | 'applyOne'>,
): CreditBatcher {
  return new CreditBatcher({
    ...options,
    execute: (credits) => creditPayments(prisma, credits),
    resultOf: creditResultOf,
    applyOne: (credit) => applyPaymentFacts(prisma, [credit.fact], credit.source),
  });
}
