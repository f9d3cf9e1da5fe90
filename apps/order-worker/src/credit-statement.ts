import type { ApplyResult, EventSource } from './ledger.js';
import { orderStatusSql } from './order-status.js';
import type { PaymentFact } from './payment-facts.js';

// The group-commit statement and what it needs, free of any database client: the worker runs it
// through Prisma, the benchmark's plain-pg baseline runs the very same SQL through `pg`.

/** Constraints whose violation by the statement means "let the general path decide". */
export const REFUSALS_FOR_THE_GENERAL_PATH = new Set([
  'ledger_entries_one_topup_per_order',
  'ledger_entries_account_id_currency_fkey',
  // The PaymentIntent already belongs to another order (metadata and orders disagree).
  'orders_payment_intent_id_key',
]);

/** A payment to credit in the batched statement, with the event that reported it (if any). */
export interface PaymentCredit {
  fact: Extract<PaymentFact, { kind: 'payment_succeeded' }>;
  source?: EventSource | undefined;
}

/** What the batched statement did with one payment. */
export interface PaymentCreditResult {
  /** The order matched the payment and the account's currency: the statement decided it. */
  eligible: boolean;
  /** Its top-up went in (and the balance and the order moved). */
  inserted: boolean;
  /** Its event was new to the inbox (or took over a failed or held row). */
  eventNew: boolean;
}

/**
 * Credits payments that match their orders — one or many (group commit) — in ONE statement over
 * arrays: one round trip and one plan however many. Per payment, the same steps and guarantee as
 * the general path:
 * - the accounts are locked first, in id order (deadlock-free between batches, and account before
 *   order as everywhere else);
 * - the ledger insert decides (ON CONFLICT DO NOTHING on the payment's reference, rows in (account,
 *   reference) order); balances move by the sum of what went in per account, orders only for what
 *   went in (status from `statusOf` for a paid order, order-status.ts) and keep the PaymentIntent;
 * - each event is recorded in the inbox as processed, or duplicate when the ledger already had its
 *   credit; an event already processed is not looked at again.
 * A payment the statement cannot decide (order missing or not matching) is left alone; PostgreSQL
 * refusing one (a second top-up for an order, an account in another currency) fails the whole
 * statement: callers then apply payments one by one through the general path.
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
    UPDATE orders SET updated_at = now(), payment_intent_id = e.reference, status = ${orderStatusSql("'paid'", 'orders.')}
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
  SELECT i.n, el.n IS NOT NULL AS eligible,
         EXISTS (SELECT 1 FROM entry e WHERE e.order_id = el.order_id) AS inserted,
         EXISTS (SELECT 1 FROM inbox x WHERE x.id = i.event_id) AS event_new
  FROM input i LEFT JOIN eligible el ON el.n = i.n ORDER BY i.n`;

/** The statement's parameters: one array per column, in the order of CREDIT_PAYMENTS_SQL's unnest. */
export function creditPaymentsParams(credits: readonly PaymentCredit[]): unknown[] {
  return [
    credits.map((credit) => credit.source?.id ?? null),
    credits.map((credit) => credit.source?.type ?? null),
    credits.map((credit) => credit.source?.objectId ?? null),
    credits.map((credit) => credit.source?.created ?? null),
    credits.map((credit) => credit.fact.paymentIntentId),
    credits.map((credit) => credit.fact.orderId ?? null),
    credits.map((credit) => credit.fact.amount),
    credits.map((credit) => credit.fact.currency),
  ];
}

/** A payment's result from the batched statement, as applyPaymentFacts reports it; undefined if the general path must decide. */
export function creditResultOf(credit: PaymentCredit, result: PaymentCreditResult | undefined): ApplyResult | undefined {
  if (!result?.eligible) return undefined;
  return {
    eventIsNew: credit.source ? result.eventNew : true,
    outcomes: [result.inserted ? 'applied' : 'already_applied'],
    details: [],
    credited: result.inserted ? 1 : 0,
  };
}
