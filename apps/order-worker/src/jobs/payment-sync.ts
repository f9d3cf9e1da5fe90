import { Stripe } from '@ledger/shared';
import { applyPaymentFacts, type ApplyResult } from '@ledger/ledger';
import { paymentFactsFromPaymentIntent } from '../facts/from-payment-intent.js';
import { countOutcomes, readJob, type JobLog, type OrderWorkerDeps } from './job-kit.js';

/** PaymentIntent statuses Stripe lets us cancel. https://docs.stripe.com/api/payment_intents/cancel */
const CANCELABLE = new Set<Stripe.PaymentIntent.Status>([
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'requires_capture',
]);

/**
 * A `paymentSync` job: asks Stripe for a PaymentIntent and applies what it says (client confirm,
 * reconciliation). An `expire` job (the order outlived ORDER_TTL) cancels it first unless it is
 * paid or on its way: a canceled PaymentIntent cannot be paid any more, so the order can end.
 */
export async function syncPaymentIntent(
  deps: Pick<OrderWorkerDeps, 'prisma' | 'metrics' | 'stripe' | 'batcher'>,
  data: unknown,
  log: JobLog,
): Promise<ApplyResult> {
  const { paymentIntentId, reason } = readJob('paymentSync', data);
  let pi = await deps.stripe.paymentIntents.retrieve(paymentIntentId);
  if (reason === 'expire' && CANCELABLE.has(pi.status)) {
    try {
      pi = await deps.stripe.paymentIntents.cancel(
        paymentIntentId,
        { cancellation_reason: 'abandoned' },
        { idempotencyKey: `pi-cancel-${paymentIntentId}` },
      );
    } catch (error) {
      // Paid or moved on meanwhile (payment_intent_unexpected_state): apply what Stripe says now.
      if (!(error instanceof Stripe.errors.StripeInvalidRequestError)) throw error;
      pi = await deps.stripe.paymentIntents.retrieve(paymentIntentId);
    }
  }
  const facts = paymentFactsFromPaymentIntent(pi, { expiring: reason === 'expire' });
  const result = await applyPaymentFacts(deps.prisma, facts, undefined, { batcher: deps.batcher });
  countOutcomes(deps.metrics, facts, result);
  // The order and account: those the ledger found, else those the PaymentIntent names in metadata.
  const order = result.order ?? {
    ...(pi.metadata?.order_id ? { orderId: pi.metadata.order_id } : {}),
    ...(pi.metadata?.account_id ? { accountId: pi.metadata.account_id } : {}),
  };
  log.info({ paymentIntentId, ...order, paymentIntentStatus: pi.status, reason, outcomes: result.outcomes }, 'payment intent synced');
  return result;
}
