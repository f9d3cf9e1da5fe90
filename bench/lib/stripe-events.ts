import { createHmac } from 'node:crypto';

/** Every bench order is a top-up of this amount, so totals are easy to check. */
export const BENCH_AMOUNT = 1_000;
export const BENCH_CURRENCY = 'usd';
/** The receiver's signing secret in every bench run (never a real one). */
export const BENCH_WEBHOOK_SECRET = 'whsec_bench_local_only_secret';

/**
 * The ids of the `index`-th order of a seeded batch. Seeding (SQL) and the senders (child processes)
 * derive them from the batch name alone, so no order list has to cross a process boundary.
 * `batch` holds letters and digits only: ids stay valid Stripe ids and BullMQ job ids.
 */
export function benchOrder(batch: string, index: number) {
  return {
    id: `ord_${batch}_${index}`,
    accountId: `acct_${batch}_${index}`,
    paymentIntentId: `pi_${batch}_${index}`,
    eventId: `evt_${batch}_${index}`,
  };
}

/** A `payment_intent.succeeded` event for a bench order, shaped like the test fixtures' (and Stripe's). */
export function paymentSucceededEvent(ids: { id: string; accountId: string; paymentIntentId: string; eventId: string }) {
  return {
    id: ids.eventId,
    object: 'event',
    api_version: '2025-01-27.acacia',
    created: Math.floor(Date.now() / 1000),
    data: {
      object: {
        id: ids.paymentIntentId,
        object: 'payment_intent',
        amount: BENCH_AMOUNT,
        amount_received: BENCH_AMOUNT,
        currency: BENCH_CURRENCY,
        client_secret: `${ids.paymentIntentId}_secret_bench`,
        metadata: { order_id: ids.id, account_id: ids.accountId },
        status: 'succeeded',
        livemode: false,
      },
    },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: 'payment_intent.succeeded',
  };
}

/**
 * The `Stripe-Signature` header Stripe would send for `payload`: HMAC-SHA256 of `t.payload` under
 * the whole `whsec_…` string. https://docs.stripe.com/webhooks#verify-manually
 * Computed here rather than with the SDK's helper because the load generators sign every request.
 */
export function stripeSignature(payload: string, secret: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const signature = createHmac('sha256', secret).update(`${timestamp}.${payload}`).digest('hex');
  return `t=${timestamp},v1=${signature}`;
}
