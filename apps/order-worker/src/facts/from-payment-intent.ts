import type { Stripe } from '@ledger/shared';
import type { PaymentFact } from '@ledger/ledger';

/**
 * What Stripe's current view of a PaymentIntent says, as payment facts. Used by client confirms and
 * reconciliation: they ask Stripe instead of trusting the client, and feed the same ledger path.
 * https://docs.stripe.com/payments/paymentintents/lifecycle
 */
export function paymentFactsFromPaymentIntent(pi: Stripe.PaymentIntent, options: { expiring?: boolean } = {}): PaymentFact[] {
  const orderId = pi.metadata?.order_id || undefined;
  switch (pi.status) {
    case 'succeeded':
      return [{ kind: 'payment_succeeded', paymentIntentId: pi.id, orderId, amount: pi.amount_received, currency: pi.currency }];
    case 'processing':
      return [{ kind: 'payment_progress', paymentIntentId: pi.id, orderId, to: 'processing' }];
    case 'canceled':
      // Canceled because the order outlived ORDER_TTL: the order ends as expired.
      return [{ kind: 'payment_progress', paymentIntentId: pi.id, orderId, to: options.expiring ? 'expired' : 'canceled' }];
    case 'requires_payment_method':
      // Back to requires_payment_method after an attempt means that attempt failed.
      return pi.last_payment_error ? [{ kind: 'payment_progress', paymentIntentId: pi.id, orderId, to: 'payment_failed' }] : [];
    default:
      return [];
  }
}
