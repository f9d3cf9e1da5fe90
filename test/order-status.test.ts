import { ORDER_STATUSES } from '@ledger/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextOrderState, orderStatusSql, progressOf, statusOf, type OrderState, type PaymentProgress } from '../apps/order-worker/src/order-status.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const PROGRESS: PaymentProgress[] = ['awaiting_payment', 'processing', 'payment_failed', 'canceled', 'expired', 'paid'];
const REVIEW = [null, 'a reason'];
const DISPUTE = [null, 'open', 'won', 'lost'];
const REFUNDED = [0, 400, 1_000];

/** Every combination of review × dispute × refunded × progress, on an order of 1,000. */
const combinations = PROGRESS.flatMap((progress) =>
  REVIEW.flatMap((reviewReason) =>
    DISPUTE.flatMap((disputeStatus) => REFUNDED.map((amountRefunded) => ({ progress, reviewReason, disputeStatus, amountRefunded, amount: 1_000 }))),
  ),
);

describe('the status rule', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('is the same in TypeScript and in the SQL the one-statement credit runs, for every combination', async () => {
    const values = combinations.map((c, index) => `(${index}, ${c.reviewReason ? `'${c.reviewReason}'` : 'NULL'}, ${c.disputeStatus ? `'${c.disputeStatus}'` : 'NULL'}, ${c.amountRefunded}, ${c.amount}, '${c.progress}')`);
    const rows = await db.prisma.$queryRawUnsafe<{ i: number; status: string }[]>(
      `SELECT i, ${orderStatusSql('progress')}::text AS status
       FROM (VALUES ${values.join(', ')}) AS t(i, review_reason, dispute_status, amount_refunded, amount, progress)
       ORDER BY i`,
    );
    expect(rows.map((row) => row.status)).toEqual(combinations.map((c) => statusOf(c.progress, c)));
  });
});

describe('nextOrderState', () => {
  const start = (status: OrderState['status'], extra: Partial<OrderState> = {}): OrderState => ({
    status,
    amount: 1_000,
    amountRefunded: 0,
    disputeStatus: null,
    reviewReason: null,
    ...extra,
  });

  it.each([
    ['a late failure after a credit', start('credited'), { kind: 'progress', to: 'payment_failed' }, 'credited'],
    ['processing after a failure', start('payment_failed'), { kind: 'progress', to: 'processing' }, 'payment_failed'],
    ['a credit after expiry', start('expired'), { kind: 'progress', to: 'paid' }, 'credited'],
    ['a partial refund', start('credited'), { kind: 'refunded', amount: 400 }, 'partially_refunded'],
    ['a full refund', start('credited'), { kind: 'refunded', amount: 1_000 }, 'refunded'],
    ['a failed full refund', start('refunded', { amountRefunded: 1_000 }), { kind: 'refunded', amount: -1_000 }, 'credited'],
    ['a dispute opened', start('credited'), { kind: 'dispute', to: 'open' }, 'disputed'],
    ['a dispute won', start('disputed', { disputeStatus: 'open' }), { kind: 'dispute', to: 'won' }, 'credited'],
    ['a dispute reopened after it was won', start('credited', { disputeStatus: 'won' }), { kind: 'dispute', to: 'open' }, 'credited'],
    ['a review flag', start('credited'), { kind: 'review', reason: 'paid twice' }, 'needs_review'],
    ['a resolution of an uncredited order', start('needs_review', { reviewReason: 'x' }), { kind: 'review_resolved' }, 'awaiting_payment'],
  ] as const)('%s', (_name, state, change, status) => {
    expect(nextOrderState(state, change).status).toBe(status);
  });

  it('under review, keeps the payment progress through whether the order was credited', () => {
    const flagged = start('needs_review', { reviewReason: 'second PaymentIntent' });
    expect(nextOrderState(flagged, { kind: 'review_resolved' }, true).status).toBe('credited');
    expect(progressOf('needs_review', true)).toBe('paid');
    expect(progressOf('needs_review', false)).toBe('awaiting_payment');
  });

  it('only ever produces statuses of the contract', () => {
    for (const c of combinations) expect(ORDER_STATUSES).toContain(statusOf(c.progress, c));
  });
});
