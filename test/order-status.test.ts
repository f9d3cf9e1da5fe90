import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusOf, type PaymentProgress } from '@ledger/ledger';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const PROGRESS: PaymentProgress[] = ['awaiting_payment', 'processing', 'payment_failed', 'canceled', 'expired', 'paid'];
const REVIEW = [null, 'a reason'];
const DISPUTE = [null, 'open', 'won', 'lost'];
const REFUNDED = [0, 400, 1_000];

/** Every combination of review × dispute × refunded × progress, on an order of 1,000. */
const combinations = PROGRESS.flatMap((progress) =>
  REVIEW.flatMap((reviewReason) =>
    DISPUTE.flatMap((disputeStatus) =>
      REFUNDED.map((amountRefunded) => ({ progress, reviewReason, disputeStatus, amountRefunded, amount: 1_000 })),
    ),
  ),
);

// The status rule's SQL twin (the function ledger_order_status, made by a migration) against the
// TypeScript rule, on PostgreSQL. The rule itself, every
// order state × every change, is tested without services in test/unit/order-status.test.ts.
describe('the status rule', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('is the same in TypeScript and in the SQL function the group-commit credit runs, for every combination', async () => {
    const values = combinations.map(
      (c, index) =>
        `(${index}, ${c.reviewReason ? `'${c.reviewReason}'` : 'NULL'}, ${c.disputeStatus ? `'${c.disputeStatus}'` : 'NULL'}, ${c.amountRefunded}, ${c.amount}, '${c.progress}')`,
    );
    const rows = await db.prisma.$queryRawUnsafe<{ i: number; status: string }[]>(
      `SELECT i, ledger_order_status(progress, review_reason, dispute_status, amount_refunded, amount)::text AS status
       FROM (VALUES ${values.join(', ')}) AS t(i, review_reason, dispute_status, amount_refunded, amount, progress)
       ORDER BY i`,
    );
    expect(rows.map((row) => row.status)).toEqual(combinations.map((c) => statusOf(c.progress, c)));
  });
});
