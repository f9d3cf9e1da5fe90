import type { OrderStatus } from '@ledger/shared';

/** What is known about an order's payment, beyond its status column. */
export interface OrderState {
  status: OrderStatus;
  amount: number;
  /** Net amount refunded: debited refunds minus those that failed or were canceled afterwards. */
  amountRefunded: number;
  /** `open`, `won` or `lost`; null while no dispute is known. */
  disputeStatus: string | null;
  /** Set while a fact of the order waits for an operator; cleared by the resolution. */
  reviewReason: string | null;
}

/** How far the payment itself got. Ranks only rise: a late `payment_failed` cannot undo a credit. */
export type PaymentProgress = 'awaiting_payment' | 'processing' | 'payment_failed' | 'canceled' | 'expired' | 'paid';

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

/** A change one payment fact (or an operator) makes to an order. */
export type OrderChange =
  | { kind: 'progress'; to: PaymentProgress }
  /** Refund debits add to the refunded amount; a reversal (failed or canceled refund) subtracts. */
  | { kind: 'refunded'; amount: number }
  | { kind: 'dispute'; to: 'open' | 'won' | 'lost' }
  | { kind: 'review'; reason: string }
  /** An operator settled the review (a credit it posted counts through `credited`). */
  | { kind: 'review_resolved' };

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
 * THE status rule. `ORDER_STATUS_SQL` below is its SQL twin for statements that set the status in
 * PostgreSQL; a table test runs every combination through both.
 */
export function statusOf(progress: PaymentProgress, state: Omit<OrderState, 'status'>): OrderStatus {
  if (state.reviewReason) return 'needs_review';
  if (state.disputeStatus === 'open' || state.disputeStatus === 'lost') return 'disputed';
  if (progress !== 'paid') return progress;
  if (state.amountRefunded >= state.amount) return 'refunded';
  if (state.amountRefunded > 0) return 'partially_refunded';
  return 'credited';
}

/**
 * {@link statusOf} as a SQL expression over the `orders` columns (qualified by `table`, e.g.
 * `orders.`), for a payment progress given as SQL (`'paid'` when the statement credits the order).
 */
export function orderStatusSql(progressSql: string, table = ''): string {
  return `(CASE
      WHEN ${table}review_reason IS NOT NULL THEN 'needs_review'
      WHEN ${table}dispute_status IN ('open', 'lost') THEN 'disputed'
      WHEN ${progressSql} <> 'paid' THEN ${progressSql}
      WHEN ${table}amount_refunded >= ${table}amount THEN 'refunded'
      WHEN ${table}amount_refunded > 0 THEN 'partially_refunded'
      ELSE 'credited' END)::"OrderStatus"`;
}
