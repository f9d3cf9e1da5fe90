import { normalizeCurrency, type StripeEventJob } from '@ledger/shared';
import { z } from 'zod';
import type { PaymentFact } from '@ledger/ledger';

/** The payload does not have the shape its event type promises. Retrying cannot fix it. */
export class MalformedEventError extends Error {
  override name = 'MalformedEventError';
}

const id = (prefix: string) => z.string().regex(new RegExp(`^${prefix}_[A-Za-z0-9_]+$`));
const amount = z.number().int().nonnegative();
/** A refund's or a dispute's amount: a positive integer (https://docs.stripe.com/api/refunds/object#refund_object-amount); the ledger posts no 0 debit. */
const debitAmount = z.number().int().positive();
const currency = z.string().transform((value, ctx) => {
  const normalized = normalizeCurrency(value);
  if (!normalized) ctx.addIssue({ code: 'custom', message: 'not an ISO currency code' });
  return normalized ?? value;
});
const metadata = z.record(z.string(), z.string()).nullish();
/** Expandable fields arrive as an id or as the expanded object. */
const expandableId = (prefix: string) => z.union([id(prefix), z.object({ id: id(prefix) }).transform((object) => object.id)]);

const paymentIntent = z.object({
  id: id('pi'),
  amount,
  amount_received: amount,
  currency,
  status: z.string(),
  metadata,
});

const checkoutSession = z.object({
  id: id('cs'),
  mode: z.string(),
  payment_status: z.string(),
  payment_intent: expandableId('pi').nullish(),
  amount_total: amount.nullish(),
  currency: currency.nullish(),
  metadata,
});

// A refund, charge or dispute of a payment made without a PaymentIntent has `payment_intent: null`:
// never one of this system's payments (it creates a PaymentIntent for every order).
const refund = z.object({
  id: id('re'),
  amount: debitAmount,
  currency,
  status: z.string().nullish(),
  payment_intent: expandableId('pi').nullish(),
});

const charge = z.object({
  id: id('ch'),
  currency,
  payment_intent: expandableId('pi').nullish(),
  refunds: z.object({ data: z.array(refund) }).nullish(),
});

const dispute = z.object({
  id: id('dp'),
  amount: debitAmount,
  currency,
  status: z.string(),
  payment_intent: expandableId('pi').nullish(),
});

function parse<T extends z.ZodType>(schema: T, event: StripeEventJob): z.infer<T> {
  const result = schema.safeParse(event.object);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new MalformedEventError(
      `${event.type} ${event.id}: ${issue ? `${issue.path.join('.') || 'object'} ${issue.message}` : 'invalid object'}`,
    );
  }
  return result.data;
}

const orderIdOf = (meta: Record<string, string> | null | undefined) => meta?.order_id || undefined;

/**
 * Stripe debits a refund when it is created (pending, requires_action or succeeded) and gives the
 * money back when it fails or is canceled. https://docs.stripe.com/refunds#failed-refunds
 */
const refundStatus = (status: string | null | undefined) => (status === 'failed' || status === 'canceled' ? 'reversed' : 'debited');

/**
 * Turns a Stripe event into the payment facts it reports. Several event types can report the same
 * fact (`payment_intent.succeeded` and `checkout.session.completed` for one payment): they produce
 * the same ledger reference, so the ledger keeps one. https://docs.stripe.com/api/events/types
 */
export function paymentFactsFromEvent(event: StripeEventJob): PaymentFact[] {
  switch (event.type) {
    case 'payment_intent.succeeded': {
      const pi = parse(paymentIntent, event);
      // Only a PaymentIntent that says so has been paid (not an authorization awaiting capture).
      if (pi.status !== 'succeeded') return [];
      return [
        {
          kind: 'payment_succeeded',
          paymentIntentId: pi.id,
          orderId: orderIdOf(pi.metadata),
          amount: pi.amount_received,
          currency: pi.currency,
        },
      ];
    }
    case 'payment_intent.processing':
    case 'payment_intent.payment_failed':
    case 'payment_intent.canceled': {
      const pi = parse(paymentIntent, event);
      const to =
        event.type === 'payment_intent.processing'
          ? 'processing'
          : event.type === 'payment_intent.canceled'
            ? 'canceled'
            : 'payment_failed';
      return [{ kind: 'payment_progress', paymentIntentId: pi.id, orderId: orderIdOf(pi.metadata), to }];
    }
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded':
    case 'checkout.session.async_payment_failed': {
      const session = parse(checkoutSession, event);
      // Only payment-mode sessions pay an order; `unpaid` completions settle later by the async events.
      if (session.mode !== 'payment' || !session.payment_intent) return [];
      const orderId = orderIdOf(session.metadata);
      if (event.type === 'checkout.session.async_payment_failed') {
        return [{ kind: 'payment_progress', paymentIntentId: session.payment_intent, orderId, to: 'payment_failed' }];
      }
      if (session.payment_status !== 'paid' && session.payment_status !== 'no_payment_required') return [];
      if (session.amount_total == null || !session.currency) {
        throw new MalformedEventError(`${event.type} ${event.id}: a paid session without amount_total or currency`);
      }
      return [
        {
          kind: 'payment_succeeded',
          paymentIntentId: session.payment_intent,
          orderId,
          amount: session.amount_total,
          currency: session.currency,
        },
      ];
    }
    case 'refund.created':
    case 'refund.updated':
    case 'refund.failed':
    case 'charge.refund.updated': {
      const r = parse(refund, event);
      if (!r.payment_intent) return [];
      return [
        {
          kind: 'refund',
          refundId: r.id,
          paymentIntentId: r.payment_intent,
          amount: r.amount,
          currency: r.currency,
          status: refundStatus(r.status),
        },
      ];
    }
    case 'charge.refunded': {
      // The charge lists its refunds only where the API version still expands them; each is a fact.
      const c = parse(charge, event);
      const paymentIntentId = c.payment_intent;
      if (!paymentIntentId) return [];
      return (c.refunds?.data ?? []).map((r) => ({
        kind: 'refund' as const,
        refundId: r.id,
        paymentIntentId,
        amount: r.amount,
        currency: r.currency,
        status: refundStatus(r.status),
      }));
    }
    case 'charge.dispute.created':
    case 'charge.dispute.closed': {
      const d = parse(dispute, event);
      // Inquiries (`warning_*`) withdraw no funds: https://docs.stripe.com/disputes/how-disputes-work
      if (d.status.startsWith('warning_') || !d.payment_intent) return [];
      const to = event.type === 'charge.dispute.created' ? 'open' : d.status === 'won' ? 'won' : d.status === 'lost' ? 'lost' : undefined;
      if (!to) return [];
      return [{ kind: 'dispute', disputeId: d.id, paymentIntentId: d.payment_intent, amount: d.amount, currency: d.currency, to }];
    }
    default:
      return [];
  }
}
