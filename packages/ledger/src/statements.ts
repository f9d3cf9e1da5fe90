import { Prisma, type LedgerEntryType } from '@ledger/shared';
import type { EventSource, EventStatus, OrderStatusUpdate } from './types.js';

// Every SQL statement of the ledger, by name, in one module: the decisions (payments.ts), the
// inbox (inbox.ts), postings (postings.ts) and orders (orders.ts) run these and nothing else.
// Each is a Prisma.sql builder (parameters stay bound, never spliced), except the group-commit
// statement, a plain string with positional parameters that `pg` runs as well (the benchmark's
// baseline). The ledger's rules are PostgreSQL's (prisma/migrations): a unique key per (account,
// type, reference), one top-up per order, the sign per entry type, append-only entries, the
// order-status function.

const sql = Prisma.sql;

// ---- the inbox (stripe_events) ----

/**
 * Inserts the event as processed, or takes over a row a failed attempt left or a held event.
 * Returns a row only when the event was not done yet.
 */
export const claimEvent = (source: EventSource) => sql`
  INSERT INTO stripe_events (id, type, object_id, status, attempts, stripe_created_at, received_at, processed_at)
  VALUES (${source.id}, ${source.type}, ${source.objectId}, 'processed', 1, to_timestamp(${source.created}), now(), now())
  ON CONFLICT (id) DO UPDATE
    SET status = 'processed', attempts = stripe_events.attempts + 1, last_error = NULL, detail = NULL, processed_at = now()
    WHERE stripe_events.status IN ('failed', 'held')
  RETURNING id`;

export const setEventStatus = (eventId: string, status: EventStatus, detail: string | null) => sql`
  UPDATE stripe_events SET status = ${status}::"StripeEventStatus", detail = ${detail} WHERE id = ${eventId}`;

export const recordEventFailure = (source: EventSource, error: string) => sql`
  INSERT INTO stripe_events (id, type, object_id, status, attempts, last_error, stripe_created_at, received_at)
  VALUES (${source.id}, ${source.type}, ${source.objectId}, 'failed', 1, ${error}, to_timestamp(${source.created}), now())
  ON CONFLICT (id) DO UPDATE
    SET attempts = stripe_events.attempts + 1, last_error = EXCLUDED.last_error
    WHERE stripe_events.status = 'failed'`;

export const recordEventNotOurs = (source: EventSource, reason: string) => sql`
  INSERT INTO stripe_events (id, type, object_id, status, attempts, detail, stripe_created_at, received_at, processed_at)
  VALUES (${source.id}, ${source.type}, ${source.objectId}, 'not_ours', 1, ${reason}, to_timestamp(${source.created}), now(), now())
  ON CONFLICT (id) DO NOTHING`;

// ---- locating and locking ----

export const orderById = (orderId: string) => sql`SELECT id, account_id FROM orders WHERE id = ${orderId}`;

/** The order a PaymentIntent leads to: the one owning it, the one its top-up credited, the one a payment of it is held for. */
export const orderOfPaymentIntent = (paymentIntentId: string) => sql`
  (SELECT id, account_id FROM orders WHERE payment_intent_id = ${paymentIntentId})
  UNION ALL
  (SELECT order_id, account_id FROM ledger_entries WHERE entry_type = 'topup' AND reference = ${paymentIntentId} AND order_id IS NOT NULL)
  UNION ALL
  (SELECT order_id, account_id FROM held_facts WHERE entry_type = 'topup' AND reference = ${paymentIntentId})
  LIMIT 1`;

export const orderOwningPaymentIntent = (paymentIntentId: string) =>
  sql`SELECT id FROM orders WHERE payment_intent_id = ${paymentIntentId}`;

export const readAccount = (accountId: string) => sql`SELECT id, currency FROM accounts WHERE id = ${accountId}`;

/**
 * FOR NO KEY UPDATE, not FOR UPDATE: a ledger insert holds a KEY SHARE lock on the account through
 * its foreign key, which FOR UPDATE would wait for. FOR UPDATE only for a currency change.
 */
export const lockAccount = (accountId: string, forKeyUpdate: boolean) =>
  forKeyUpdate
    ? sql`SELECT id, currency FROM accounts WHERE id = ${accountId} FOR UPDATE`
    : sql`SELECT id, currency FROM accounts WHERE id = ${accountId} FOR NO KEY UPDATE`;

export const lockOrder = (orderId: string) => sql`
  SELECT id, account_id, amount, currency, status, payment_intent_id, amount_refunded, dispute_status, review_reason
  FROM orders WHERE id = ${orderId} FOR NO KEY UPDATE`;

// ---- what the ledger already holds ----

export const entryOf = (accountId: string, type: LedgerEntryType, reference: string) => sql`
  SELECT id FROM ledger_entries WHERE account_id = ${accountId} AND entry_type = ${type}::"LedgerEntryType" AND reference = ${reference}`;

export const topupOfOrder = (orderId: string) => sql`
  SELECT reference FROM ledger_entries WHERE order_id = ${orderId} AND entry_type = 'topup'`;

export const anyEntryOfAccount = (accountId: string) => sql`SELECT id FROM ledger_entries WHERE account_id = ${accountId} LIMIT 1`;

/** An order's credit: its top-up, or an operator's resolution that credited it. */
export const creditOfOrder = (orderId: string) => sql`
  SELECT id FROM ledger_entries WHERE order_id = ${orderId} AND (entry_type = 'topup' OR (entry_type = 'adjustment' AND amount > 0)) LIMIT 1`;

export const heldPaymentDecision = (orderId: string, paymentIntentId: string) => sql`
  SELECT r.decision::text AS decision FROM held_facts h LEFT JOIN review_resolutions r ON r.id = h.resolution_id
  WHERE h.order_id = ${orderId} AND h.entry_type = 'topup' AND h.reference = ${paymentIntentId}`;

// ---- held facts ----

export const heldFactOf = (orderId: string, type: LedgerEntryType, reference: string) => sql`
  SELECT id, resolution_id, reason FROM held_facts WHERE order_id = ${orderId} AND entry_type = ${type}::"LedgerEntryType" AND reference = ${reference}`;

export const insertHeldFact = (
  order: { id: string; account_id: string },
  held: { type: LedgerEntryType; reference: string; signedAmount: number; currency: string },
  reason: string,
  eventId: string | null,
) => sql`
  INSERT INTO held_facts (order_id, account_id, entry_type, reference, amount, currency, reason, stripe_event_id)
  VALUES (${order.id}, ${order.account_id}, ${held.type}::"LedgerEntryType", ${held.reference}, ${held.signedAmount}, ${held.currency}, ${reason}, ${eventId})
  ON CONFLICT (order_id, entry_type, reference) DO NOTHING
  RETURNING id`;

// ---- postings and balances ----

/** ON CONFLICT DO NOTHING (any unique key): a skipped insert does not abort the transaction, an error would. */
export const insertEntry = (entry: {
  accountId: string;
  type: LedgerEntryType;
  signedAmount: number;
  currency: string;
  reference: string;
  orderId: string | null;
  eventId: string | null;
}) => sql`
  INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id, stripe_event_id)
  VALUES (${entry.accountId}, ${entry.type}::"LedgerEntryType", ${entry.signedAmount}, ${entry.currency}, ${entry.reference}, ${entry.orderId}, ${entry.eventId})
  ON CONFLICT DO NOTHING`;

export const moveBalance = (accountId: string, signedAmount: number) => sql`
  UPDATE accounts SET balance = balance + ${signedAmount}, updated_at = now() WHERE id = ${accountId}`;

/** Only while the account has no entry (its ledger foreign key forbids it otherwise). */
export const setAccountCurrency = (accountId: string, currency: string) => sql`
  UPDATE accounts SET currency = ${currency}, updated_at = now() WHERE id = ${accountId}`;

// ---- orders ----

export const updateOrder = (orderId: string, next: OrderStatusUpdate) => sql`
  UPDATE orders
  SET status = ${next.status}::"OrderStatus", amount_refunded = ${next.amountRefunded},
      dispute_status = ${next.disputeStatus}, review_reason = ${next.reviewReason},
      payment_intent_id = ${next.paymentIntentId}, updated_at = now()
  WHERE id = ${orderId}`;

// ---- group commit ----

/**
 * Credits payments that match their orders — one or many (group commit) — in ONE statement over
 * arrays: one round trip and one plan however many. Per payment, the same steps and guarantee as
 * the general path (payments.ts):
 * - the accounts are locked first, in id order (deadlock-free between batches, and account before
 *   order as everywhere else);
 * - the ledger insert decides (ON CONFLICT DO NOTHING on the payment's reference, rows in (account,
 *   reference) order); balances move by the sum of what went in per account, orders only for what
 *   went in (status from the migration-made `ledger_order_status`, the SQL twin of `statusOf` in
 *   order-status.ts) and keep the PaymentIntent;
 * - each event is recorded in the inbox as processed, or duplicate when the ledger already had its
 *   credit; an event already processed is not looked at again.
 * A payment the statement cannot decide (order missing or not matching) is left alone (`eligible`
 * false); PostgreSQL refusing one (a second top-up for an order, an account in another currency)
 * fails the whole statement. Either way the general path decides those payments.
 * Callers put at most one payment per PaymentIntent and per event into one batch.
 */
export const CREDIT_PAYMENTS_SQL = `
  WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::int[], $8::text[])
      WITH ORDINALITY AS t(event_id, event_type, object_id, created, payment_intent_id, order_ref, amount, currency, n)
  ), target AS MATERIALIZED (
    SELECT i.n, o.id AS order_id, o.account_id FROM input i
    JOIN orders o ON o.id = COALESCE(i.order_ref, (SELECT p.id FROM orders p WHERE p.payment_intent_id = i.payment_intent_id))
  ), locked AS MATERIALIZED (
    SELECT a.id, a.currency FROM accounts a WHERE a.id IN (SELECT account_id FROM target) ORDER BY a.id FOR NO KEY UPDATE
  ), eligible AS (
    SELECT i.*, t.order_id, t.account_id FROM input i
    JOIN target t ON t.n = i.n JOIN orders o ON o.id = t.order_id JOIN locked a ON a.id = t.account_id
    WHERE o.amount = i.amount AND o.currency = i.currency AND a.currency = o.currency
      AND (o.payment_intent_id IS NULL OR o.payment_intent_id = i.payment_intent_id)
  ), entry AS (
    INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id, stripe_event_id)
    SELECT account_id, 'topup', amount, currency, payment_intent_id, order_id, event_id FROM eligible ORDER BY account_id, payment_intent_id
    ON CONFLICT (account_id, entry_type, reference) DO NOTHING
    RETURNING account_id, order_id, reference, amount
  ), acct AS (
    UPDATE accounts a SET balance = a.balance + s.total, updated_at = now()
    FROM (SELECT account_id, SUM(amount)::bigint AS total FROM entry GROUP BY account_id) s
    WHERE a.id = s.account_id
    RETURNING a.id
  ), ord AS (
    UPDATE orders SET updated_at = now(), payment_intent_id = e.reference,
      status = ledger_order_status('paid', orders.review_reason, orders.dispute_status, orders.amount_refunded, orders.amount)
    FROM entry e WHERE orders.id = e.order_id
    RETURNING orders.id
  ), inbox AS (
    INSERT INTO stripe_events (id, type, object_id, status, attempts, stripe_created_at, received_at, processed_at)
    SELECT el.event_id, el.event_type, el.object_id,
           (CASE WHEN EXISTS (SELECT 1 FROM entry e WHERE e.order_id = el.order_id) THEN 'processed' ELSE 'duplicate' END)::"StripeEventStatus",
           1, to_timestamp(el.created), now(), now()
    FROM eligible el WHERE el.event_id IS NOT NULL
    ON CONFLICT (id) DO UPDATE
      SET status = EXCLUDED.status, attempts = stripe_events.attempts + 1, last_error = NULL, detail = NULL, processed_at = now()
      WHERE stripe_events.status IN ('failed', 'held')
    RETURNING id
  )
  SELECT i.n, el.n IS NOT NULL AS eligible, el.order_id, el.account_id,
         EXISTS (SELECT 1 FROM entry e WHERE e.order_id = el.order_id) AS inserted,
         EXISTS (SELECT 1 FROM inbox x WHERE x.id = i.event_id) AS event_new
  FROM input i LEFT JOIN eligible el ON el.n = i.n ORDER BY i.n`;

// ---- the ledger's invariant ----

/** Accounts whose balance is not the sum of their ledger entries (the audit's first check; tests run it too). */
export const BALANCE_DRIFT_SQL = `
  SELECT a.id, a.balance, COALESCE(SUM(l.amount), 0)::bigint AS ledger
  FROM accounts a LEFT JOIN ledger_entries l ON l.account_id = a.id
  GROUP BY a.id, a.balance
  HAVING a.balance <> COALESCE(SUM(l.amount), 0)
  ORDER BY a.id`;

// ---- spending (the functions of migration 20261207110200_spending_functions) ----

/** Each spending function answers one `ledger_spending_result` row; these are its columns. */
const SPENDING_COLUMNS = sql`outcome, kind, id, account_id, currency, amount, reference, description, status,
  captured_amount, expires_at, created_at, updated_at, balance, held`;

export const debitAccount = (debit: {
  accountId: string;
  amount: number;
  currency: string;
  reference: string;
  description: string | null;
}) =>
  sql`SELECT ${SPENDING_COLUMNS} FROM ledger_debit(${debit.accountId}, ${debit.amount}::int, ${debit.currency}, ${debit.reference}, ${debit.description})`;

export const placeHold = (hold: {
  id: string;
  accountId: string;
  amount: number;
  currency: string;
  reference: string;
  expiresInSeconds: number;
}) =>
  sql`SELECT ${SPENDING_COLUMNS} FROM ledger_place_hold(${hold.accountId}, ${hold.amount}::int, ${hold.currency}, ${hold.reference}, ${hold.id}, ${hold.expiresInSeconds}::int)`;

export const captureHold = (holdId: string, amount: number | null) =>
  sql`SELECT ${SPENDING_COLUMNS} FROM ledger_capture_hold(${holdId}, ${amount}::int)`;

export const releaseHold = (holdId: string) => sql`SELECT ${SPENDING_COLUMNS} FROM ledger_release_hold(${holdId})`;

export const holdById = (holdId: string) => sql`
  SELECT r.* FROM holds h CROSS JOIN LATERAL ledger_hold_result('found', h, clock_timestamp()) r WHERE h.id = ${holdId}`;

export const accountFigures = (accountId: string) => sql`
  SELECT id AS account_id, currency, balance, ledger_held(id, clock_timestamp()) AS held FROM accounts WHERE id = ${accountId}`;

export const expireHolds = (limit: number) => sql`SELECT ledger_expire_holds(${limit}::int) AS expired`;
