/**
 * The credit transaction of apps/order-worker/src/ledger.ts written with plain `pg`, for the
 * payment-succeeded path: the baseline the real worker is measured against.
 *
 * ledger.ts has two paths and each has its mirror here: {@link creditWithStatements} is its general
 * path, an interactive transaction of six statements (eight round trips with BEGIN and COMMIT);
 * {@link creditWithOneStatement} is the one-statement path it takes for a payment that matches its
 * order (`creditInOneStatement`).
 */
import { UnrecoverableError } from 'bullmq';
import type pg from 'pg';

/** The parts of a queued `payment_intent.succeeded` event the credit needs. */
export interface PaymentSucceeded {
  eventId: string;
  type: string;
  created: number;
  paymentIntentId: string;
  orderId: string;
  amount: number;
  currency: string;
}

/** Reads a queued event job by hand (no zod): the baseline spends nothing it does not need. */
export function readPaymentSucceeded(jobId: string | undefined, jobData: unknown): PaymentSucceeded {
  const data = jobData as { id?: unknown; type?: unknown; created?: unknown; object?: Record<string, unknown> };
  const object = data.object ?? {};
  const metadata = object.metadata as Record<string, unknown> | undefined;
  const fact = {
    eventId: data.id,
    type: data.type,
    created: data.created,
    paymentIntentId: object.id,
    orderId: metadata?.order_id,
    amount: object.amount_received,
    currency: object.currency,
  };
  if (
    typeof fact.eventId !== 'string' || typeof fact.type !== 'string' || typeof fact.created !== 'number' ||
    typeof fact.paymentIntentId !== 'string' || typeof fact.orderId !== 'string' ||
    typeof fact.amount !== 'number' || typeof fact.currency !== 'string'
  ) {
    throw new UnrecoverableError(`job ${jobId} is not a payment_intent.succeeded event`);
  }
  return fact as PaymentSucceeded;
}

/** Statuses a successful payment moves forward to `credited` (ledger.ts's rank order). */
const BELOW_CREDITED = new Set(['awaiting_payment', 'processing', 'payment_failed', 'canceled']);

/** ledger.ts's transaction, statement for statement, on the payment-succeeded path. */
export async function creditWithStatements(pool: pg.Pool, fact: PaymentSucceeded): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const claim = await client.query(
      `INSERT INTO stripe_events (id, type, object_id, status, attempts, stripe_created_at, received_at, processed_at)
       VALUES ($1, $2, $3, 'processed', 1, to_timestamp($4), now(), now())
       ON CONFLICT (id) DO UPDATE
         SET status = 'processed', attempts = stripe_events.attempts + 1, last_error = NULL, processed_at = now()
         WHERE stripe_events.status = 'failed'
       RETURNING id`,
      [fact.eventId, fact.type, fact.paymentIntentId, fact.created],
    );
    if (claim.rowCount === 0) {
      await client.query('COMMIT');
      return;
    }
    const orders = await client.query<{ id: string; account_id: string; amount: number; currency: string; payment_intent_id: string | null; review_reason: string | null }>(
      `SELECT id, account_id, amount, currency, status, payment_intent_id, amount_refunded, dispute_status, review_reason
       FROM orders WHERE id = $1`,
      [fact.orderId],
    );
    const order = orders.rows[0];
    if (!order) throw new Error(`no order ${fact.orderId}`);
    if (order.payment_intent_id !== fact.paymentIntentId || order.amount !== fact.amount || order.currency !== fact.currency || order.review_reason) {
      throw new UnrecoverableError(`order ${order.id} does not match its payment: the bench seeds only matching ones`);
    }
    const entry = await client.query(
      `INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id, stripe_event_id)
       VALUES ($1, 'topup', $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
      [order.account_id, fact.amount, order.currency, fact.paymentIntentId, order.id, fact.eventId],
    );
    if (entry.rowCount === 1) {
      await client.query('UPDATE accounts SET balance = balance + $1, updated_at = now() WHERE id = $2', [fact.amount, order.account_id]);
      const locked = await client.query<{ status: string }>(
        `SELECT id, account_id, amount, currency, status, payment_intent_id, amount_refunded, dispute_status, review_reason
         FROM orders WHERE id = $1 FOR NO KEY UPDATE`,
        [order.id],
      );
      const current = locked.rows[0]?.status;
      if (current && BELOW_CREDITED.has(current)) {
        await client.query(
          `UPDATE orders SET status = 'credited'::"OrderStatus", amount_refunded = 0, dispute_status = NULL, review_reason = NULL, updated_at = now()
           WHERE id = $1`,
          [order.id],
        );
      }
    } else {
      // The claim recorded the event as processed; only an event that changed nothing is relabelled.
      await client.query(`UPDATE stripe_events SET status = 'duplicate' WHERE id = $1 RETURNING *`, [fact.eventId]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * ledger.ts's one-statement path (`creditInOneStatement`), the same SQL sent with plain `pg`: one
 * round trip, no interactive transaction. Throws when the order is missing or does not match, where
 * ledger.ts falls back to its general path (the bench seeds only matching orders).
 */
export async function creditWithOneStatement(pool: pg.Pool, fact: PaymentSucceeded): Promise<void> {
  const { rows } = await pool.query<{ eligible: boolean; inserted: boolean; event_new: boolean }>(
    `WITH o AS (
       SELECT id, account_id FROM orders
       WHERE id = COALESCE($1::text, (SELECT id FROM orders WHERE payment_intent_id = $2))
         AND amount = $3::int AND currency = $4::text
         AND (payment_intent_id IS NULL OR payment_intent_id = $2) AND review_reason IS NULL
     ), entry AS (
       INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id, stripe_event_id)
       SELECT account_id, 'topup', $3::int, $4::text, $2, id, $5::text FROM o
       ON CONFLICT (account_id, entry_type, reference) DO NOTHING
       RETURNING account_id, order_id
     ), acct AS (
       UPDATE accounts SET balance = balance + $3::int, updated_at = now()
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
       SELECT $5::text, $6::text, $7::text,
              (CASE WHEN EXISTS (SELECT 1 FROM ord) THEN 'processed' ELSE 'duplicate' END)::"StripeEventStatus",
              1, to_timestamp($8::bigint), now(), now()
       WHERE $5::text IS NOT NULL AND EXISTS (SELECT 1 FROM o)
       ON CONFLICT (id) DO UPDATE
         SET status = EXCLUDED.status, attempts = stripe_events.attempts + 1, last_error = NULL, processed_at = now()
         WHERE stripe_events.status = 'failed'
       RETURNING id
     )
     SELECT EXISTS (SELECT 1 FROM o) AS eligible, EXISTS (SELECT 1 FROM ord) AS inserted, EXISTS (SELECT 1 FROM inbox) AS event_new`,
    [fact.orderId, fact.paymentIntentId, fact.amount, fact.currency, fact.eventId, fact.type, fact.paymentIntentId, fact.created],
  );
  if (!rows[0]?.eligible) throw new Error(`order ${fact.orderId} is missing or does not match its payment`);
}
