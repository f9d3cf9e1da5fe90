import type { OrderStatus } from '@ledger/shared';
import type { OrderChange, OrderState, PaymentProgress } from './types.js';

const PROGRESS_RANK: Record<PaymentProgress, number> = {
  awaiting_payment: 0,
  processing: 1,
  payment_failed: 2,
  canceled: 2,
  expired: 2,
  paid: 3,
};

/**
 * The payment progress a status implies. `paid` means the account was credited for the order (a
 * top-up, or an operator's credit). Under review the status hides the progress, so the caller says
 * whether such a credit exists.
 */
export function progressOf(status: OrderStatus, credited: boolean): PaymentProgress {
  switch (status) {
    case 'awaiting_payment':
    case 'processing':
    case 'payment_failed':
    case 'canceled':
    case 'expired':
      return status;
    case 'needs_review':
      return credited ? 'paid' : 'awaiting_payment';
    default:
      return 'paid';
  }
}

const DISPUTE_RANK: Record<string, number> = { open: 1, won: 2, lost: 2 };

/**
 * The order's next state. Progress only rises, a dispute goes open → closed, a review flag sticks
 * until an operator resolves it, and the refunded amount is the sum of ledger entries that went in
 * once each; the status is a function of those, so any arrival order of the same facts ends in the
 * same status. `credited` says whether the order has a credit (only read under review).
 */
export function nextOrderState(state: OrderState, change: OrderChange, credited = false): OrderState {
  let progress = progressOf(state.status, credited);
  let { amountRefunded, disputeStatus, reviewReason } = state;
  switch (change.kind) {
    case 'progress':
      if (PROGRESS_RANK[change.to] > PROGRESS_RANK[progress]) progress = change.to;
      break;
    case 'refunded':
      amountRefunded += change.amount;
      break;
    case 'dispute':
      if ((DISPUTE_RANK[change.to] ?? 0) > (DISPUTE_RANK[disputeStatus ?? ''] ?? 0)) disputeStatus = change.to;
      break;
    case 'review':
      reviewReason ??= change.reason;
      break;
    case 'review_resolved':
      reviewReason = null;
      break;
  }
  const next = { amount: state.amount, amountRefunded, disputeStatus, reviewReason };
  return { ...next, status: statusOf(progress, next) };
}

/**
 * THE status rule. Its SQL twin is the function `ledger_order_status(progress, review_reason,
 * dispute_status, amount_refunded, amount)` that a migration creates (prisma/migrations/
 * 20261207100300_order_status_function), for statements that set the status in PostgreSQL (the
 * group-commit credit); test/order-status.test.ts runs every combination through both.
 */
export function statusOf(progress: PaymentProgress, state: Omit<OrderState, 'status'>): OrderStatus {
  if (state.reviewReason) return 'needs_review';
  if (state.disputeStatus === 'open' || state.disputeStatus === 'lost') return 'disputed';
  if (progress !== 'paid') return progress;
  if (state.amountRefunded >= state.amount) return 'refunded';
  if (state.amountRefunded > 0) return 'partially_refunded';
  return 'credited';
}
