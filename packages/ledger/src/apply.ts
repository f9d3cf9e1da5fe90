import type { PrismaClient } from '@ledger/shared';
import type { CreditBatcher } from './group-commit/batcher.js';
import { creditPayments, creditResultOf } from './group-commit/statement.js';
import { applyFactsInTransaction } from './payments.js';
import type { ApplyResult, EventSource, PaymentCredit, PaymentFact } from './types.js';

/**
 * THE entry point of money coming in: applies the facts one event (or one sync) reports, exactly
 * once. The one place that decides which way they go:
 * - one payment that succeeded (the common case) goes through the group-commit statement — with
 *   the process's `batcher` together with its concurrent neighbours, without one in a statement of
 *   its own;
 * - anything else, and a payment the statement did not decide (its order missing or not matching,
 *   PostgreSQL refusing its batch, the batch failing), goes straight to the general path
 *   (payments.ts), which decides every kind of fact under row locks.
 * Both leave the same ledger, balances, orders and inbox rows (test/group-commit.test.ts).
 */
export async function applyPaymentFacts(
  prisma: PrismaClient,
  facts: PaymentFact[],
  source?: EventSource,
  options: { batcher?: CreditBatcher | undefined } = {},
): Promise<ApplyResult> {
  const credit = singlePayment(facts, source);
  if (credit) {
    const decided = options.batcher
      ? await options.batcher.credit(credit)
      : creditResultOf(credit, (await creditPayments(prisma, [credit]))?.[0]);
    if (decided) return decided;
  }
  return applyFactsInTransaction(prisma, facts, source);
}

/** The facts as one payment for the statement, when that is what they are. */
function singlePayment(facts: PaymentFact[], source: EventSource | undefined): PaymentCredit | undefined {
  const [only] = facts;
  return facts.length === 1 && only?.kind === 'payment_succeeded' ? { fact: only, source } : undefined;
}
