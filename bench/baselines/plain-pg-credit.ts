/**
 * The worker's group-commit credit with plain `pg`: the baseline the real worker is measured
 * against. The SQL is the worker's own (`CREDIT_PAYMENTS_SQL`, one source), batched by the worker's
 * own `CreditBatcher`; what differs is everything around it — Prisma instead of `pg`, zod parsing,
 * logs, metrics — which is what the ratio isolates.
 */
import { UnrecoverableError } from 'bullmq';
import type pg from 'pg';
import {
  CREDIT_PAYMENTS_SQL,
  CreditBatcher,
  REFUSALS_FOR_THE_GENERAL_PATH,
  creditPaymentsParams,
  type ApplyResult,
  type PaymentCredit,
  type PaymentCreditResult,
} from '@ledger/ledger';

/** Reads a queued `payment_intent.succeeded` job by hand (no zod): the baseline spends nothing it does not need. */
export function readPaymentCredit(jobId: string | undefined, jobData: unknown): PaymentCredit {
  const data = jobData as { id?: unknown; type?: unknown; created?: unknown; object?: Record<string, unknown> };
  const object = data.object ?? {};
  const metadata = object.metadata as Record<string, unknown> | undefined;
  const { id, type, created } = data;
  const paymentIntentId = object.id;
  const orderId = metadata?.order_id;
  const amount = object.amount_received;
  const currency = object.currency;
  if (
    typeof id !== 'string' ||
    typeof type !== 'string' ||
    typeof created !== 'number' ||
    typeof paymentIntentId !== 'string' ||
    typeof orderId !== 'string' ||
    typeof amount !== 'number' ||
    typeof currency !== 'string'
  ) {
    throw new UnrecoverableError(`job ${jobId} is not a payment_intent.succeeded event`);
  }
  return {
    fact: { kind: 'payment_succeeded', paymentIntentId, orderId, amount, currency },
    source: { id, type, objectId: paymentIntentId, created },
  };
}

/** The statement over a batch through `pg`; undefined when PostgreSQL refused it (as `creditPayments`). */
export async function creditPaymentsWithPg(pool: pg.Pool, credits: readonly PaymentCredit[]): Promise<PaymentCreditResult[] | undefined> {
  try {
    const { rows } = await pool.query<{ eligible: boolean; inserted: boolean; event_new: boolean }>(
      CREDIT_PAYMENTS_SQL,
      creditPaymentsParams(credits),
    );
    return rows.map((row) => ({ eligible: row.eligible, inserted: row.inserted, eventNew: row.event_new }));
  } catch (error) {
    const constraint = (error as { constraint?: string }).constraint;
    if (constraint !== undefined && REFUSALS_FOR_THE_GENERAL_PATH.has(constraint)) return undefined;
    throw error;
  }
}

/** The worker's batcher on `pg`. The bench seeds only orders that match their payments: anything else is a bench bug. */
export function plainPgBatcher(
  pool: pg.Pool,
  options: { maxBatch: number; maxWaitMs: number },
): { credit(credit: PaymentCredit): Promise<ApplyResult>; drain(): Promise<void> } {
  const batcher = new CreditBatcher({ ...options, execute: (credits) => creditPaymentsWithPg(pool, credits) });
  return {
    async credit(credit) {
      const decided = await batcher.credit(credit);
      if (decided) return decided;
      throw new UnrecoverableError(
        `order ${credit.fact.orderId} is missing or does not match its payment: the bench seeds only matching ones`,
      );
    },
    drain: () => batcher.drain(),
  };
}
