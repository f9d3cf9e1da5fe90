import { ORDER_STATUSES, type OrderStatus } from '@ledger/shared';
import { describe, expect, it } from 'vitest';
import { nextOrderState, progressOf, statusOf, type OrderChange, type OrderState, type PaymentProgress } from '@ledger/ledger';

// Pure: the order status rule, every order state × every change, in milliseconds. That the SQL twin
// of the rule agrees is test/order-status.test.ts (it needs PostgreSQL).

const state = (status: OrderStatus, extra: Partial<OrderState> = {}): OrderState => ({
  status,
  amount: 1_000,
  amountRefunded: 0,
  disputeStatus: null,
  reviewReason: null,
  ...extra,
});

/** Each status an order of 1,000 can be in, and whether it has a credit (read under review only). */
const STATES: [string, OrderState, boolean][] = [
  ['awaiting_payment', state('awaiting_payment'), false],
  ['processing', state('processing'), false],
  ['payment_failed', state('payment_failed'), false],
  ['canceled', state('canceled'), false],
  ['expired', state('expired'), false],
  ['credited', state('credited'), true],
  ['partially_refunded (400)', state('partially_refunded', { amountRefunded: 400 }), true],
  ['refunded', state('refunded', { amountRefunded: 1_000 }), true],
  ['disputed (open)', state('disputed', { disputeStatus: 'open' }), true],
  ['credited, dispute won', state('credited', { disputeStatus: 'won' }), true],
  ['disputed (lost)', state('disputed', { disputeStatus: 'lost' }), true],
  ['needs_review, unpaid', state('needs_review', { reviewReason: 'second PaymentIntent' }), false],
  ['needs_review, credited', state('needs_review', { reviewReason: 'second PaymentIntent' }), true],
];

/** Every change a fact or an operator makes, in the column order of the table below. */
const CHANGES: OrderChange[] = [
  { kind: 'progress', to: 'awaiting_payment' },
  { kind: 'progress', to: 'processing' },
  { kind: 'progress', to: 'payment_failed' },
  { kind: 'progress', to: 'canceled' },
  { kind: 'progress', to: 'expired' },
  { kind: 'progress', to: 'paid' },
  { kind: 'refunded', amount: 400 },
  { kind: 'refunded', amount: 600 },
  { kind: 'refunded', amount: -400 },
  { kind: 'dispute', to: 'open' },
  { kind: 'dispute', to: 'won' },
  { kind: 'dispute', to: 'lost' },
  { kind: 'review', reason: 'paid twice' },
  { kind: 'review_resolved' },
];

// The status after each change (columns as CHANGES), written out by hand from the rules: progress
// only rises (failed, canceled and expired rank alike, paid above all), the refunded amount adds up,
// a dispute goes open → won/lost and never back, a review flag hides everything until resolved.
const A = 'awaiting_payment',
  P = 'processing',
  F = 'payment_failed',
  C = 'canceled',
  E = 'expired';
const OK = 'credited',
  PR = 'partially_refunded',
  R = 'refunded',
  D = 'disputed',
  NR = 'needs_review';
//                         prog:await  proc  failed cancel expire paid  ref+400 ref+600 ref-400 dsp:open won  lost  review resolved
const EXPECTED: Record<string, OrderStatus[]> = {
  awaiting_payment: [A, P, F, C, E, OK, A, A, A, D, A, D, NR, A],
  processing: [P, P, F, C, E, OK, P, P, P, D, P, D, NR, P],
  payment_failed: [F, F, F, F, F, OK, F, F, F, D, F, D, NR, F],
  canceled: [C, C, C, C, C, OK, C, C, C, D, C, D, NR, C],
  expired: [E, E, E, E, E, OK, E, E, E, D, E, D, NR, E],
  credited: [OK, OK, OK, OK, OK, OK, PR, PR, OK, D, OK, D, NR, OK],
  'partially_refunded (400)': [PR, PR, PR, PR, PR, PR, PR, R, OK, D, PR, D, NR, PR],
  refunded: [R, R, R, R, R, R, R, R, PR, D, R, D, NR, R],
  'disputed (open)': [D, D, D, D, D, D, D, D, D, D, OK, D, NR, D],
  'credited, dispute won': [OK, OK, OK, OK, OK, OK, PR, PR, OK, OK, OK, OK, NR, OK],
  'disputed (lost)': [D, D, D, D, D, D, D, D, D, D, D, D, NR, D],
  'needs_review, unpaid': [NR, NR, NR, NR, NR, NR, NR, NR, NR, NR, NR, NR, NR, A],
  'needs_review, credited': [NR, NR, NR, NR, NR, NR, NR, NR, NR, NR, NR, NR, NR, OK],
};

const describeChange = (change: OrderChange) =>
  change.kind === 'progress' || change.kind === 'dispute'
    ? `${change.kind} → ${change.to}`
    : change.kind === 'refunded'
      ? `refunded ${change.amount}`
      : change.kind;

describe('nextOrderState: every order state × every change', () => {
  it('covers every status of the contract', () => {
    expect(new Set(STATES.map(([, s]) => s.status))).toEqual(new Set(ORDER_STATUSES));
    expect(Object.keys(EXPECTED)).toEqual(STATES.map(([name]) => name));
  });

  it.each(STATES)('from %s', (name, from, credited) => {
    const got = CHANGES.map((change) => nextOrderState(from, change, credited).status);
    // One line per change in a failure, so the cell that is wrong is named.
    expect(CHANGES.map((change, i) => `${describeChange(change)}: ${got[i]}`)).toEqual(
      CHANGES.map((change, i) => `${describeChange(change)}: ${EXPECTED[name]![i]}`),
    );
  });
});

describe('nextOrderState: what moves and what sticks', () => {
  const PROGRESS: PaymentProgress[] = ['awaiting_payment', 'processing', 'payment_failed', 'canceled', 'expired', 'paid'];
  const cases = STATES.flatMap(([name, from, credited]) =>
    CHANGES.map((change) => ({ name, from, credited, change, next: nextOrderState(from, change, credited) })),
  );

  it('keeps the amount, and moves the refunded amount only by a refund', () => {
    for (const { from, change, next } of cases) {
      expect(next.amount).toBe(from.amount);
      expect(next.amountRefunded).toBe(from.amountRefunded + (change.kind === 'refunded' ? change.amount : 0));
    }
  });

  it('closes a dispute once: open → won or lost, never back', () => {
    for (const { from, change, next } of cases) {
      if (from.disputeStatus === 'won' || from.disputeStatus === 'lost') expect(next.disputeStatus).toBe(from.disputeStatus);
      else if (change.kind === 'dispute') expect(next.disputeStatus).toBe(change.to);
      else expect(next.disputeStatus).toBe(from.disputeStatus);
    }
  });

  it('keeps the first review reason until an operator resolves it', () => {
    for (const { from, change, next } of cases) {
      if (change.kind === 'review_resolved') expect(next.reviewReason).toBeNull();
      else if (from.reviewReason) expect(next.reviewReason).toBe(from.reviewReason);
      else expect(next.reviewReason).toBe(change.kind === 'review' ? change.reason : null);
    }
  });

  it('under review, keeps the payment progress through whether the order was credited', () => {
    expect(progressOf('needs_review', true)).toBe('paid');
    expect(progressOf('needs_review', false)).toBe('awaiting_payment');
  });

  it('only ever produces statuses of the contract, for every combination of what an order knows', () => {
    for (const progress of PROGRESS)
      for (const reviewReason of [null, 'a reason'])
        for (const disputeStatus of [null, 'open', 'won', 'lost'])
          for (const amountRefunded of [0, 400, 1_000])
            expect(ORDER_STATUSES).toContain(statusOf(progress, { amount: 1_000, amountRefunded, disputeStatus, reviewReason }));
  });
});
