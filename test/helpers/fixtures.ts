import { randomBytes } from 'node:crypto';
import { stripeEventJobData, type PrismaClient, type StripeEventJob } from '@ledger/shared';

const rand = (bytes = 8) => randomBytes(bytes).toString('hex');

export interface OrderFixture {
  id: string;
  accountId: string;
  amount: number;
  currency: string;
  paymentIntentId: string;
}

/** An order's ids and amount, not stored yet. */
export function newOrderFixture(options: { accountId?: string; amount?: number; currency?: string } = {}): OrderFixture {
  return {
    id: `ord_${rand(12)}`,
    accountId: options.accountId ?? `acct_${rand(6)}`,
    amount: options.amount ?? 1_000,
    currency: options.currency ?? 'usd',
    paymentIntentId: `pi_${rand(12)}`,
  };
}

/** Stores an account and an order awaiting payment with its PaymentIntent id, as POST /orders leaves them. */
export async function insertOrderFixture(prisma: PrismaClient, order: OrderFixture): Promise<OrderFixture> {
  await prisma.account.createMany({ data: [{ id: order.accountId, currency: order.currency }], skipDuplicates: true });
  await prisma.order.create({
    data: {
      ...order,
      clientSecret: `${order.paymentIntentId}_secret_${rand(8)}`,
      idempotencyKey: `key_${rand(6)}`,
      requestHash: rand(16),
    },
  });
  return order;
}

/** {@link newOrderFixture}, stored. */
export async function createOrderFixture(
  prisma: PrismaClient,
  options: { accountId?: string; amount?: number; currency?: string } = {},
): Promise<OrderFixture> {
  return insertOrderFixture(prisma, newOrderFixture(options));
}

function event(type: string, object: Record<string, unknown>, id = `evt_${rand(12)}`) {
  return {
    id,
    object: 'event',
    api_version: '2025-01-27.acacia',
    created: Math.floor(Date.now() / 1000),
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  } as {
    id: string;
    object: string;
    api_version: string;
    created: number;
    data: { object: Record<string, unknown> };
    livemode: boolean;
    account?: string;
    pending_webhooks: number;
    request: { id: null; idempotency_key: null };
    type: string;
  };
}

export type RefundEventType = 'refund.created' | 'refund.updated' | 'refund.failed' | 'charge.refund.updated' | 'charge.refunded';

export type StripeEventFixture = ReturnType<typeof event>;

/** Events as Stripe sends them (shapes from Stripe's own example objects). */
export const events = {
  paymentIntent(
    type: 'succeeded' | 'processing' | 'payment_failed' | 'canceled',
    order: OrderFixture,
    overrides: { amount?: number; currency?: string; status?: string; metadata?: Record<string, string> } = {},
  ) {
    const amount = overrides.amount ?? order.amount;
    return event(`payment_intent.${type}`, {
      id: order.paymentIntentId,
      object: 'payment_intent',
      amount: order.amount,
      amount_received: type === 'succeeded' ? amount : 0,
      currency: overrides.currency ?? order.currency,
      client_secret: `${order.paymentIntentId}_secret_x`,
      metadata: overrides.metadata ?? { order_id: order.id, account_id: order.accountId },
      status:
        overrides.status ??
        (type === 'succeeded'
          ? 'succeeded'
          : type === 'canceled'
            ? 'canceled'
            : type === 'processing'
              ? 'processing'
              : 'requires_payment_method'),
      livemode: false,
    });
  },
  checkoutCompleted(order: OrderFixture) {
    return event('checkout.session.completed', {
      id: `cs_test_${rand(12)}`,
      object: 'checkout.session',
      mode: 'payment',
      payment_status: 'paid',
      status: 'complete',
      payment_intent: order.paymentIntentId,
      amount_total: order.amount,
      currency: order.currency,
      metadata: { order_id: order.id },
    });
  },
  refund(type: RefundEventType, order: OrderFixture, refund: { id: string; amount: number; status?: string; currency?: string }) {
    const refundObject = {
      id: refund.id,
      object: 'refund',
      amount: refund.amount,
      currency: refund.currency ?? order.currency,
      charge: `ch_${order.paymentIntentId.slice(3)}`,
      payment_intent: order.paymentIntentId,
      status: refund.status ?? (type === 'refund.failed' ? 'failed' : 'succeeded'),
    };
    if (type !== 'charge.refunded') return event(type, refundObject);
    return event(type, {
      id: `ch_${order.paymentIntentId.slice(3)}`,
      object: 'charge',
      amount: order.amount,
      amount_refunded: refund.amount,
      currency: order.currency,
      payment_intent: order.paymentIntentId,
      refunded: refund.amount >= order.amount,
      refunds: { object: 'list', data: [refundObject] },
    });
  },
  /**
   * A dispute event. `funds` fills the dispute's balance transactions as Stripe lists them (zero,
   * one or two); absent, the dispute carries no list (an older job's compact payload).
   */
  dispute(
    type: DisputeEventType,
    order: OrderFixture,
    dispute: { id: string; status: string; amount?: number; currency?: string; funds?: 'none' | 'withdrawn' | 'reinstated' },
  ) {
    const amount = dispute.amount ?? order.amount;
    const currency = dispute.currency ?? order.currency;
    const transaction = (sign: 1 | -1) => ({
      id: `txn_${rand(14)}`,
      object: 'balance_transaction',
      amount: sign * amount,
      currency,
      fee: sign === -1 ? 1_500 : 0,
      net: sign * amount - (sign === -1 ? 1_500 : 0),
      reporting_category: sign === -1 ? 'dispute' : 'dispute_reversal',
      source: dispute.id,
      status: 'available',
      type: 'adjustment',
    });
    const balanceTransactions =
      dispute.funds === undefined
        ? {}
        : {
            balance_transactions:
              dispute.funds === 'none' ? [] : dispute.funds === 'withdrawn' ? [transaction(-1)] : [transaction(-1), transaction(1)],
          };
    return event(`charge.dispute.${type}`, {
      id: dispute.id,
      object: 'dispute',
      amount,
      currency,
      charge: `ch_${order.paymentIntentId.slice(3)}`,
      payment_intent: order.paymentIntentId,
      status: dispute.status,
      reason: 'fraudulent',
      ...balanceTransactions,
    });
  },
};

/**
 * The events of one dispute's life as Stripe sends them, each with the dispute as it was then:
 * `won` / `lost` (funds withdrawn at once), `inquiry` (a warning, never escalated),
 * `won_without_funds` (a dispute that never withdrew anything). https://docs.stripe.com/disputes
 */
export function disputeLifecycle(
  order: OrderFixture,
  id: string,
  amount: number,
  ending: 'won' | 'lost' | 'inquiry' | 'won_without_funds',
): StripeEventFixture[] {
  const dispute = { id, amount };
  if (ending === 'inquiry') {
    return [
      events.dispute('created', order, { ...dispute, status: 'warning_needs_response', funds: 'none' }),
      events.dispute('updated', order, { ...dispute, status: 'warning_under_review', funds: 'none' }),
      events.dispute('closed', order, { ...dispute, status: 'warning_closed', funds: 'none' }),
    ];
  }
  if (ending === 'won_without_funds') {
    return [
      events.dispute('created', order, { ...dispute, status: 'needs_response', funds: 'none' }),
      events.dispute('closed', order, { ...dispute, status: 'won', funds: 'none' }),
    ];
  }
  const opened = [
    events.dispute('created', order, { ...dispute, status: 'needs_response', funds: 'withdrawn' }),
    events.dispute('funds_withdrawn', order, { ...dispute, status: 'needs_response', funds: 'withdrawn' }),
    events.dispute('updated', order, { ...dispute, status: 'under_review', funds: 'withdrawn' }),
  ];
  return ending === 'won'
    ? [
        ...opened,
        events.dispute('funds_reinstated', order, { ...dispute, status: 'won', funds: 'reinstated' }),
        events.dispute('closed', order, { ...dispute, status: 'won', funds: 'reinstated' }),
      ]
    : [...opened, events.dispute('closed', order, { ...dispute, status: 'lost', funds: 'withdrawn' })];
}

/**
 * The same event (same id) rendered at an API version before 2022-11-15: a PaymentIntent carries
 * its `charges` list, a Charge its `refunds` list (https://docs.stripe.com/changelog/2022-11-15).
 */
export function atOlderVersion(stripeEvent: StripeEventFixture): StripeEventFixture {
  const object = structuredClone(stripeEvent.data.object);
  if (object.object === 'payment_intent') {
    const charges =
      object.status === 'succeeded'
        ? [
            {
              id: `ch_${String(object.id).slice(3)}`,
              object: 'charge',
              amount: object.amount_received,
              currency: object.currency,
              paid: true,
              payment_intent: object.id,
            },
          ]
        : [];
    object.charges = {
      object: 'list',
      data: charges,
      has_more: false,
      total_count: charges.length,
      url: `/v1/charges?payment_intent=${String(object.id)}`,
    };
    delete object.latest_charge;
  }
  return { ...stripeEvent, api_version: '2022-08-01', data: { ...stripeEvent.data, object } };
}

export type DisputeEventType = 'created' | 'updated' | 'closed' | 'funds_withdrawn' | 'funds_reinstated';

/** The queued job payload of an event, as the receiver builds it. */
export function jobOf(stripeEvent: StripeEventFixture): StripeEventJob {
  return stripeEventJobData(stripeEvent);
}
