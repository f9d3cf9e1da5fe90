import type { OrderStatus } from '@ledger/shared';

/** What is known about an order's payment, beyond its status column. */
export interface OrderState {
  status: OrderStatus;
  amount: number;
  amountRefunded: number;
  /** `open`, `won` or `lost`; null while no dispute is known. */
  disputeStatus: string | null;
  reviewReason: string | null;
}

/** How far the payment itself got. Ranks only rise: a late `payment_failed` cannot undo a credit. */
type PaymentProgress = 'awaiting_payment' | 'processing' | 'payment_failed' | 'canceled' | 'paid';

const PROGRESS_RANK: Record<PaymentProgress, number> = {
  awaiting_payment: 0,
  processing: 1,
  payment_failed: 2,
  canceled: 2,
  paid: 3,
};

/** The payment progress a status implies: a refund or a dispute can only exist for a paid order. */
function progressOf(state: OrderState): PaymentProgress {
  switch (state.status) {
    case 'awaiting_payment':
    case 'processing':
    case 'payment_failed':
    case 'canceled':
      return state.status;
    case 'needs_review':
      return 'awaiting_payment';
    default:
      return 'paid';
  }
}

/** A change one payment fact makes to an order. */
export type OrderChange =
  | { kind: 'progress'; to: PaymentProgress }
  | { kind: 'refunded'; amount: number }
  | { kind: 'dispute'; to: 'open' | 'won' | 'lost' }
  | { kind: 'review'; reason: string };

const DISPUTE_RANK: Record<string, number> = { open: 1, won: 2, lost: 2 };

/**
 * The order's next state. Every field moves one way only (progress rises, refunds add up, a dispute
 * goes open → closed, a review flag sticks) and the status is a function of the fields, so any order
 * of arrival of the same facts ends in the same status.
 */
export function nextOrderState(state: OrderState, change: OrderChange): OrderState {
  let progress = progressOf(state);
  let { amountRefunded, disputeStatus, reviewReason } = state;
  switch (change.kind) {
    case 'progress':
      if (PROGRESS_RANK[change.to] > PROGRESS_RANK[progress]) progress = change.to;
      break;
    case 'refunded':
      amountRefunded += change.amount;
      progress = 'paid';
      break;
    case 'dispute':
      if ((DISPUTE_RANK[change.to] ?? 0) > (DISPUTE_RANK[disputeStatus ?? ''] ?? 0)) disputeStatus = change.to;
      progress = 'paid';
      break;
    case 'review':
      reviewReason ??= change.reason;
      break;
  }
  return { ...state, amountRefunded, disputeStatus, reviewReason, status: statusOf(progress, { ...state, amountRefunded, disputeStatus, reviewReason }) };
}

function statusOf(progress: PaymentProgress, state: Omit<OrderState, 'status'>): OrderStatus {
  if (state.reviewReason) return 'needs_review';
  if (state.disputeStatus === 'open' || state.disputeStatus === 'lost') return 'disputed';
  if (progress !== 'paid') return progress;
  if (state.amountRefunded >= state.amount) return 'refunded';
  if (state.amountRefunded > 0) return 'partially_refunded';
  return 'credited';
}
