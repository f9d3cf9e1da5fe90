import type { Prisma } from '@ledger/shared';
import { nextOrderState } from './order-status.js';
import * as statements from './statements.js';
import type { AccountRow, OrderChange, OrderRow, OrderState } from './types.js';

type Tx = Prisma.TransactionClient;

/**
 * Locks the account, then the order: every money path takes them in this order. FOR NO KEY UPDATE
 * (statements.lockAccount says why); `forKeyUpdate` is for the rare currency change, which updates
 * the account's key.
 */
export async function lockAccountAndOrder(
  tx: Tx,
  accountId: string,
  orderId: string,
  forKeyUpdate = false,
): Promise<{ account: AccountRow; order: OrderRow }> {
  const [account] = await tx.$queryRaw<AccountRow[]>(statements.lockAccount(accountId, forKeyUpdate));
  const order = await lockOrder(tx, orderId);
  if (!account) throw new Error(`account ${accountId} of order ${orderId} vanished`);
  return { account, order };
}

/** Locks the order's row (after its account's, where money moves) and reads it. */
export async function lockOrder(tx: Tx, orderId: string): Promise<OrderRow> {
  const [order] = await tx.$queryRaw<OrderRow[]>(statements.lockOrder(orderId));
  if (!order) throw new Error(`order ${orderId} vanished`);
  return order;
}

/** Whether the order has a credit: a top-up, or an operator's resolution that credited it. */
async function orderCredited(tx: Tx, orderId: string): Promise<boolean> {
  return (await tx.$queryRaw<{ id: bigint }[]>(statements.creditOfOrder(orderId))).length > 0;
}

/**
 * Writes the order's next state (the caller holds its lock and passes the row it read). Updates the
 * row in place, so later facts of the same transaction start from it. Returns whether it changed.
 */
export async function moveOrder(tx: Tx, order: OrderRow, change: OrderChange, paymentIntentId?: string): Promise<boolean> {
  const current: OrderState = {
    status: order.status,
    amount: order.amount,
    amountRefunded: order.amount_refunded,
    disputeStatus: order.dispute_status,
    reviewReason: order.review_reason,
  };
  const credited = order.status === 'needs_review' ? await orderCredited(tx, order.id) : false;
  const next = nextOrderState(current, change, credited);
  const newPaymentIntent = order.payment_intent_id === null && paymentIntentId !== undefined;
  if (
    !newPaymentIntent &&
    next.status === current.status &&
    next.amountRefunded === current.amountRefunded &&
    next.disputeStatus === current.disputeStatus &&
    next.reviewReason === current.reviewReason
  ) {
    return false;
  }
  const payment = newPaymentIntent ? paymentIntentId : order.payment_intent_id;
  await tx.$executeRaw(statements.updateOrder(order.id, { ...next, paymentIntentId: payment }));
  Object.assign(order, {
    status: next.status,
    amount_refunded: next.amountRefunded,
    dispute_status: next.disputeStatus,
    review_reason: next.reviewReason,
    payment_intent_id: payment,
  });
  return true;
}
