import { Prisma, type LedgerEntryType, type PrismaClient } from '@ledger/shared';
import { nextOrderState, type OrderChange, type OrderState } from './order-status.js';
import type { PaymentFact } from './payment-facts.js';

type Tx = Prisma.TransactionClient;

/** What applying one fact did. */
export type FactOutcome =
  /** A ledger entry went in and the balance moved. */
  | 'applied'
  /** The ledger already had this entry (or the event was already processed): nothing changed. */
  | 'already_applied'
  /** The fact moves no money (a failed or canceled payment, a dispute lost): only the order moved. */
  | 'status_only'
  /** Amount, currency or PaymentIntent do not match the order: flagged, no money moved. */
  | 'needs_review';

/** The Stripe event a set of facts came from; recorded in the inbox in the same transaction. */
export interface EventSource {
  id: string;
  type: string;
  objectId: string | null;
  /** Stripe's `created`, unix seconds. */
  created: number;
}

export interface ApplyResult {
  /** False when the event was already processed: nothing was looked at again. */
  eventIsNew: boolean;
  outcomes: FactOutcome[];
  /** Top-up credits this call made, for the created → credited histogram. */
  credited: number;
}

/**
 * No order matches the payment yet. Retryable: a webhook can beat the commit of the order it is
 * about, and an order created outside this system never appears (the job then fails visibly).
 */
export class OrderNotFoundError extends Error {
  override name = 'OrderNotFoundError';
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

/**
 * Applies the facts of one event (or of one sync) in ONE PostgreSQL transaction:
 * 1. claim the event in the inbox (a processed event id means: already done, stop);
 * 2. per fact, insert the ledger entry with ON CONFLICT DO NOTHING — zero rows means already
 *    applied and nothing after it runs (the conflict check comes before the balance moves);
 * 3. move the balance (the account row lock serialises credits per account);
 * 4. move the order forward (always locked after the account: one lock order, no deadlocks).
 * A unique key in PostgreSQL is the guarantee; job ids only save work.
 */
export async function applyPaymentFacts(
  prisma: PrismaClient,
  facts: PaymentFact[],
  source?: EventSource,
): Promise<ApplyResult> {
  const [only] = facts;
  if (facts.length === 1 && only?.kind === 'payment_succeeded') {
    const result = await creditInOneStatement(prisma, only, source);
    if (result) return result;
  }
  return prisma.$transaction(async (tx) => {
    if (source && !(await claimEvent(tx, source))) {
      return { eventIsNew: false, outcomes: facts.map(() => 'already_applied' as const), credited: 0 };
    }
    const outcomes: FactOutcome[] = [];
    let credited = 0;
    for (const fact of facts) {
      const outcome = await applyFact(tx, fact, source?.id ?? null);
      if (outcome === 'applied' && fact.kind === 'payment_succeeded') credited += 1;
      outcomes.push(outcome);
    }
    // The claim recorded the event as processed; only an event that changed nothing is relabelled.
    if (source && outcomes.length > 0 && outcomes.every((outcome) => outcome === 'already_applied')) {
      await tx.stripeEvent.update({ where: { id: source.id }, data: { status: 'duplicate' } });
    }
    return { eventIsNew: true, outcomes, credited };
  });
}

interface OneStatementCredit {
  eligible: boolean;
  inserted: boolean;
  event_new: boolean;
}

/**
 * The common case — a payment that matches its order — as ONE statement, so one round trip and
 * no interactive transaction (a single statement is atomic on its own). Same steps and guarantee
 * as the general path: the ledger insert decides (ON CONFLICT DO NOTHING); the balance and the
 * order move only for a row that went in (`acct` runs before `ord`, which reads it: account, then
 * order); the event is recorded in the inbox as processed, or as duplicate when the ledger already
 * had the credit. The order's new status is `statusOf` for a paid order (order-status.ts).
 *
 * Returns undefined, having written nothing, when the order is missing, does not match the
 * payment or is under review: the general path then looks at it (retry, or needs_review).
 */
async function creditInOneStatement(
  prisma: PrismaClient,
  fact: Extract<PaymentFact, { kind: 'payment_succeeded' }>,
  source: EventSource | undefined,
): Promise<ApplyResult | undefined> {
  const eventId = source?.id ?? null;
  const [row] = await prisma.$queryRaw<OneStatementCredit[]>`
    WITH o AS (
      SELECT id, account_id FROM orders
      WHERE id = COALESCE(${fact.orderId ?? null}::text, (SELECT id FROM orders WHERE payment_intent_id = ${fact.paymentIntentId}))
        AND amount = ${fact.amount}::int AND currency = ${fact.currency}::text
        AND (payment_intent_id IS NULL OR payment_intent_id = ${fact.paymentIntentId}) AND review_reason IS NULL
    ), entry AS (
      INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id, stripe_event_id)
      SELECT account_id, 'topup', ${fact.amount}::int, ${fact.currency}::text, ${fact.paymentIntentId}, id, ${eventId}::text FROM o
      ON CONFLICT (account_id, entry_type, reference) DO NOTHING
      RETURNING account_id, order_id
    ), acct AS (
      UPDATE accounts SET balance = balance + ${fact.amount}::int, updated_at = now()
      WHERE id = (SELECT account_id FROM entry)
      RETURNING id
    ), ord AS (
      UPDATE orders SET updated_at = now(), status = (CASE
          WHEN review_reason IS NOT NULL THEN 'needs_review'
          WHEN dispute_status IN ('open', 'lost') THEN 'disputed'
          WHEN amount_refunded >= amount THEN 'refunded'
          WHEN amount_refunded > 0 THEN 'partially_refunded'
          ELSE 'credited' END)::"OrderStatus"
      WHERE id = (SELECT order_id FROM entry) AND EXISTS (SELECT 1 FROM acct)
      RETURNING id
    ), inbox AS (
      INSERT INTO stripe_events (id, type, object_id, status, attempts, stripe_created_at, received_at, processed_at)
      SELECT ${eventId}::text, ${source?.type ?? null}::text, ${source?.objectId ?? null}::text,
             (CASE WHEN EXISTS (SELECT 1 FROM ord) THEN 'processed' ELSE 'duplicate' END)::"StripeEventStatus",
             1, to_timestamp(${source?.created ?? 0}::bigint), now(), now()
      WHERE ${eventId}::text IS NOT NULL AND EXISTS (SELECT 1 FROM o)
      ON CONFLICT (id) DO UPDATE
        SET status = EXCLUDED.status, attempts = stripe_events.attempts + 1, last_error = NULL, processed_at = now()
        WHERE stripe_events.status = 'failed'
      RETURNING id
    )
    SELECT EXISTS (SELECT 1 FROM o) AS eligible, EXISTS (SELECT 1 FROM ord) AS inserted, EXISTS (SELECT 1 FROM inbox) AS event_new`;
  if (!row?.eligible) return undefined;
  const eventIsNew = source ? row.event_new : true;
  return { eventIsNew, outcomes: [row.inserted ? 'applied' : 'already_applied'], credited: row.inserted ? 1 : 0 };
}

/**
 * Inserts the event into the inbox, or takes over a row a failed attempt left. Returns false when
 * the event was already processed. Concurrent claims of one id wait on the row and then see it done.
 */
async function claimEvent(tx: Tx, source: EventSource): Promise<boolean> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    INSERT INTO stripe_events (id, type, object_id, status, attempts, stripe_created_at, received_at, processed_at)
    VALUES (${source.id}, ${source.type}, ${source.objectId}, 'processed', 1, to_timestamp(${source.created}), now(), now())
    ON CONFLICT (id) DO UPDATE
      SET status = 'processed', attempts = stripe_events.attempts + 1, last_error = NULL, processed_at = now()
      WHERE stripe_events.status = 'failed'
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

async function findOrder(tx: Tx, paymentIntentId: string, orderId?: string): Promise<OrderRow> {
  const rows = orderId
    ? await tx.$queryRaw<OrderRow[]>`
        SELECT id, account_id, amount, currency, status, payment_intent_id, amount_refunded, dispute_status, review_reason
        FROM orders WHERE id = ${orderId}`
    : await tx.$queryRaw<OrderRow[]>`
        SELECT id, account_id, amount, currency, status, payment_intent_id, amount_refunded, dispute_status, review_reason
        FROM orders WHERE payment_intent_id = ${paymentIntentId}`;
  const order = rows[0];
  if (!order) {
    throw new OrderNotFoundError(
      orderId ? `no order ${orderId} (PaymentIntent ${paymentIntentId})` : `no order for PaymentIntent ${paymentIntentId}`,
    );
  }
  return order;
}

async function applyFact(tx: Tx, fact: PaymentFact, eventId: string | null): Promise<FactOutcome> {
  const order = await findOrder(tx, fact.paymentIntentId, fact.kind === 'payment_succeeded' || fact.kind === 'payment_progress' ? fact.orderId : undefined);

  // A payment through a PaymentIntent other than the order's own would carry another ledger
  // reference and credit the order twice: never silently.
  if (order.payment_intent_id !== null && order.payment_intent_id !== fact.paymentIntentId) {
    await moveOrder(tx, order.id, { kind: 'review', reason: `payment ${fact.paymentIntentId} is not the order's PaymentIntent ${order.payment_intent_id}` });
    return 'needs_review';
  }

  switch (fact.kind) {
    case 'payment_progress':
      await moveOrder(tx, order.id, { kind: 'progress', to: fact.to });
      return 'status_only';

    case 'payment_succeeded': {
      if (fact.amount !== order.amount || fact.currency !== order.currency) {
        await moveOrder(tx, order.id, {
          kind: 'review',
          reason: `paid ${fact.amount} ${fact.currency}, order is ${order.amount} ${order.currency}`,
        });
        return 'needs_review';
      }
      if (order.review_reason) return 'needs_review';
      const inserted = await insertLedgerEntry(tx, order, 'topup', fact.paymentIntentId, fact.amount, eventId);
      if (!inserted) return 'already_applied';
      await moveOrder(tx, order.id, { kind: 'progress', to: 'paid' });
      return 'applied';
    }

    case 'refund': {
      if (fact.currency !== order.currency) {
        await moveOrder(tx, order.id, { kind: 'review', reason: `refund ${fact.refundId} in ${fact.currency}` });
        return 'needs_review';
      }
      // An order under review was never credited automatically; its refunds wait for an operator.
      if (order.review_reason) return 'needs_review';
      const inserted = await insertLedgerEntry(tx, order, 'refund', fact.refundId, -fact.amount, eventId);
      if (!inserted) return 'already_applied';
      await moveOrder(tx, order.id, { kind: 'refunded', amount: fact.amount });
      return 'applied';
    }

    case 'dispute': {
      if (order.review_reason) return 'needs_review';
      // Stripe takes the disputed amount when the dispute opens and gives it back if it is won, so
      // the debit is keyed by the dispute id and a won close adds a reversal under the same id.
      // A dispute we first hear of as closed still gets its debit (events can arrive in any order).
      const debited = await insertLedgerEntry(tx, order, 'dispute', fact.disputeId, -fact.amount, eventId);
      const reversed = fact.to === 'won'
        ? await insertLedgerEntry(tx, order, 'dispute_reversal', fact.disputeId, fact.amount, eventId)
        : false;
      await moveOrder(tx, order.id, { kind: 'dispute', to: fact.to });
      if (debited || reversed) return 'applied';
      return fact.to === 'lost' ? 'status_only' : 'already_applied';
    }
  }
}

/**
 * Inserts one ledger entry and, only if it went in, moves the balance. Returns whether it went in.
 * ON CONFLICT DO NOTHING instead of catching P2002: an error aborts the whole PostgreSQL
 * transaction, a skipped insert does not.
 */
async function insertLedgerEntry(
  tx: Tx,
  order: OrderRow,
  entryType: LedgerEntryType,
  reference: string,
  amount: number,
  eventId: string | null,
): Promise<boolean> {
  const { count } = await tx.ledgerEntry.createMany({
    data: [{ accountId: order.account_id, entryType, amount, currency: order.currency, reference, orderId: order.id, stripeEventId: eventId }],
    skipDuplicates: true,
  });
  if (count === 0) return false;
  await tx.$executeRaw`UPDATE accounts SET balance = balance + ${amount}, updated_at = now() WHERE id = ${order.account_id}`;
  return true;
}

/**
 * Locks the order (after the account, if any), then writes its next state. FOR NO KEY UPDATE, not
 * FOR UPDATE: a ledger insert holds a KEY SHARE lock on its order through the foreign key, which
 * FOR UPDATE would wait for — a deadlock with a concurrent fact on the same order (found by the
 * shuffle property test).
 */
async function moveOrder(tx: Tx, orderId: string, change: OrderChange): Promise<void> {
  const rows = await tx.$queryRaw<OrderRow[]>`
    SELECT id, account_id, amount, currency, status, payment_intent_id, amount_refunded, dispute_status, review_reason
    FROM orders WHERE id = ${orderId} FOR NO KEY UPDATE`;
  const row = rows[0];
  if (!row) throw new OrderNotFoundError(`order ${orderId} vanished`);
  const current: OrderState = {
    status: row.status,
    amount: row.amount,
    amountRefunded: row.amount_refunded,
    disputeStatus: row.dispute_status,
    reviewReason: row.review_reason,
  };
  const next = nextOrderState(current, change);
  if (
    next.status === current.status &&
    next.amountRefunded === current.amountRefunded &&
    next.disputeStatus === current.disputeStatus &&
    next.reviewReason === current.reviewReason
  ) {
    return;
  }
  await tx.$executeRaw`
    UPDATE orders
    SET status = ${next.status}::"OrderStatus", amount_refunded = ${next.amountRefunded},
        dispute_status = ${next.disputeStatus}, review_reason = ${next.reviewReason}, updated_at = now()
    WHERE id = ${orderId}`;
}
