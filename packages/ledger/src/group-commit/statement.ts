import { poolOf, postgresErrorOf, type PrismaClient } from '@ledger/shared';
import { CREDIT_PAYMENTS_SQL } from '../statements.js';
import type { ApplyResult, PaymentCredit, PaymentCreditResult } from '../types.js';

// The group-commit statement's inputs and outputs, free of any database client: the worker runs it
// through Prisma (creditPayments), the benchmark's plain-pg baseline runs the very same SQL
// through `pg`.

/** Constraints whose violation by the statement means "let the general path decide". */
export const REFUSALS_FOR_THE_GENERAL_PATH = new Set([
  'ledger_entries_one_topup_per_order',
  'ledger_entries_account_id_currency_fkey',
  // The PaymentIntent already belongs to another order (metadata and orders disagree).
  'orders_payment_intent_id_key',
]);

/** The prepared statement's name on each connection of the pool. */
const CREDIT_PAYMENTS_STATEMENT = 'ledger_credit_payments';

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

/**
 * Runs {@link CREDIT_PAYMENTS_SQL}. Returns the result of each payment, in order, or undefined when
 * PostgreSQL refused one of them (nothing was written: the statement is atomic).
 */
export async function creditPayments(prisma: PrismaClient, credits: readonly PaymentCredit[]): Promise<PaymentCreditResult[] | undefined> {
  let rows: { eligible: boolean; order_id: string | null; account_id: string | null; inserted: boolean; event_new: boolean }[];
  const pool = poolOf(prisma);
  try {
    // Through the client's own pool as a named prepared statement: PostgreSQL parses and plans
    // it once per connection instead of on every batch, and Prisma's per-query work is skipped.
    rows = pool
      ? (await pool.query({ name: CREDIT_PAYMENTS_STATEMENT, text: CREDIT_PAYMENTS_SQL, values: creditPaymentsParams(credits) })).rows
      : await prisma.$queryRawUnsafe(CREDIT_PAYMENTS_SQL, ...creditPaymentsParams(credits));
  } catch (error) {
    const refused = postgresErrorOf(error)?.constraint;
    if (refused !== undefined && REFUSALS_FOR_THE_GENERAL_PATH.has(refused)) return undefined;
    throw error;
  }
  return rows.map((row) => ({
    eligible: row.eligible,
    inserted: row.inserted,
    eventNew: row.event_new,
    order: row.order_id !== null && row.account_id !== null ? { orderId: row.order_id, accountId: row.account_id } : undefined,
  }));
}

/** A payment's result from the statement, as applyPaymentFacts reports it; undefined when the general path must decide. */
export function creditResultOf(credit: PaymentCredit, result: PaymentCreditResult | undefined): ApplyResult | undefined {
  if (!result?.eligible) return undefined;
  return {
    eventIsNew: credit.source ? result.eventNew : true,
    outcomes: [result.inserted ? 'applied' : 'already_applied'],
    details: [],
    credited: result.inserted ? 1 : 0,
    order: result.order,
  };
}
