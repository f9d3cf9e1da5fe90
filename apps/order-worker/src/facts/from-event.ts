import { normalizeCurrency, type Stripe, type StripeEventJob } from '@ledger/shared';
import { z } from 'zod';
import type { PaymentFact } from '@ledger/ledger';
import { paymentFactsFromPaymentIntent } from './from-payment-intent.js';

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
  // Adaptive Pricing: from basil (2025-03-31) on, `currency` is the integration's and the customer's
  // is here; before basil `currency` was the customer's and `currency_conversion` the integration's.
  // https://docs.stripe.com/changelog/basil/2025-03-31/add_presentment_details
  presentment_details: z.object({ presentment_currency: z.string().nullish() }).nullish(),
  currency_conversion: z.object({ source_currency: z.string().nullish() }).nullish(),
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
  // Listed inline only at API versions before 2022-11-15, at most 10 of them (`has_more` beyond).
  refunds: z.object({ data: z.array(refund), has_more: z.boolean().nullish() }).nullish(),
});

/** A dispute's balance transaction, as far as it says which way the money went. */
const disputeTransaction = z.object({ amount: z.number().int(), reporting_category: z.string().nullish() });

const dispute = z.object({
  id: id('dp'),
  amount: debitAmount,
  currency,
  status: z.string(),
  payment_intent: expandableId('pi').nullish(),
  balance_transactions: z.array(disputeTransaction).nullish(),
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

/**
 * What the event alone cannot tell and Stripe must be asked (never guessed): the refunds of a
 * charge whose event does not list them all (API versions from 2022-11-15 list none), the
 * PaymentIntent of a Checkout Session paid in another currency than the session's.
 */
export type StripeLookup =
  | { lookup: 'charge_refunds'; chargeId: string; paymentIntentId: string }
  | { lookup: 'payment_intent'; paymentIntentId: string; orderId: string | undefined };

/** The facts an event reports, or what must be asked of Stripe to know them. */
export type EventReading = PaymentFact[] | StripeLookup;

const orderIdOf = (meta: Record<string, string> | null | undefined) => meta?.order_id || undefined;

/**
 * Stripe debits a refund when it is created (pending, requires_action or succeeded) and gives the
 * money back when it fails or is canceled. https://docs.stripe.com/refunds#failed-refunds
 */
const refundStatus = (status: string | null | undefined) => (status === 'failed' || status === 'canceled' ? 'reversed' : 'debited');

/**
 * Where a dispute's money is: its balance transactions (zero, one or two) say so, the funds events
 * at least what they announce. Without the list (a job queued by an earlier release), none is
 * assumed known and the dispute's status decides, as it did then.
 */
function disputeFunds(
  type: string,
  transactions: z.infer<typeof disputeTransaction>[] | null | undefined,
): Extract<PaymentFact, { kind: 'dispute' }>['funds'] {
  const reinstated =
    type === 'charge.dispute.funds_reinstated' ||
    (transactions ?? []).some((bt) => bt.reporting_category === 'dispute_reversal' || bt.amount > 0);
  if (reinstated) return 'reinstated';
  if (type === 'charge.dispute.funds_withdrawn' || (transactions ?? []).length > 0) return 'withdrawn';
  return transactions ? 'none' : undefined;
}

/**
 * Turns a Stripe event into the payment facts it reports. Several event types can report the same
 * fact (`payment_intent.succeeded` and `checkout.session.completed` for one payment): they produce
 * the same ledger reference, so the ledger keeps one. https://docs.stripe.com/api/events/types
 * Reads the shapes of every API version (an endpoint's version, or the version an event was created
 * with when reconciliation lists it); where the payload lacks what a fact needs, it says what to ask
 * Stripe ({@link StripeLookup}).
 */
export function paymentFactsFromEvent(event: StripeEventJob): EventReading {
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
      // Paid in the customer's currency (Adaptive Pricing): the session's amounts are not the
      // PaymentIntent's. Credit what the PaymentIntent says; a currency other than the order's is held.
      const otherThanSession = (code: string | null | undefined) => code != null && normalizeCurrency(code) !== session.currency;
      const converted =
        otherThanSession(session.presentment_details?.presentment_currency) ||
        otherThanSession(session.currency_conversion?.source_currency);
      if (converted) return { lookup: 'payment_intent', paymentIntentId: session.payment_intent, orderId };
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
      // The charge lists its refunds only at API versions before 2022-11-15 (and at most 10 of
      // them); otherwise Stripe is asked for them. Each refund is a fact.
      const c = parse(charge, event);
      const paymentIntentId = c.payment_intent;
      if (!paymentIntentId) return [];
      if (!c.refunds || c.refunds.has_more) return { lookup: 'charge_refunds', chargeId: c.id, paymentIntentId };
      return refundFacts(c.refunds.data, paymentIntentId);
    }
    case 'charge.dispute.created':
    case 'charge.dispute.updated':
    case 'charge.dispute.closed':
    case 'charge.dispute.funds_withdrawn':
    case 'charge.dispute.funds_reinstated': {
      const d = parse(dispute, event);
      // Inquiries (`warning_*`) withdraw no funds; one that escalates becomes a dispute (its status
      // changes, funds are withdrawn). https://docs.stripe.com/disputes/how-disputes-work
      if (d.status.startsWith('warning_') || !d.payment_intent) return [];
      const to = d.status === 'won' || d.status === 'prevented' ? 'won' : d.status === 'lost' ? 'lost' : 'open';
      return [
        {
          kind: 'dispute',
          disputeId: d.id,
          paymentIntentId: d.payment_intent,
          amount: d.amount,
          currency: d.currency,
          to,
          funds: disputeFunds(event.type, d.balance_transactions),
        },
      ];
    }
    default:
      return [];
  }
}

/** Refunds read from a list (an old-version charge, or Stripe's answer), as facts of `paymentIntentId`. */
function refundFacts(refunds: readonly z.infer<typeof refund>[], paymentIntentId: string): PaymentFact[] {
  return refunds.map((r) => ({
    kind: 'refund' as const,
    refundId: r.id,
    paymentIntentId,
    amount: r.amount,
    currency: r.currency,
    status: refundStatus(r.status),
  }));
}

/**
 * Asks Stripe what an event left out ({@link StripeLookup}) and returns the facts its answer
 * reports: every refund of the charge (`GET /v1/refunds?charge=`, all pages), or the PaymentIntent
 * itself. A failed call throws, so the job is retried; nothing is guessed.
 */
export async function resolveStripeLookup(stripe: Stripe, lookup: StripeLookup): Promise<PaymentFact[]> {
  if (lookup.lookup === 'payment_intent') {
    const pi = await stripe.paymentIntents.retrieve(lookup.paymentIntentId);
    return paymentFactsFromPaymentIntent(pi).map((fact) =>
      'orderId' in fact && fact.orderId === undefined && lookup.orderId !== undefined ? { ...fact, orderId: lookup.orderId } : fact,
    );
  }
  const refunds: z.infer<typeof refund>[] = [];
  for await (const listed of stripe.refunds.list({ charge: lookup.chargeId, limit: 100 })) {
    const result = refund.safeParse(listed);
    if (!result.success)
      throw new MalformedEventError(`refund ${listed.id} of charge ${lookup.chargeId}: ${result.error.issues[0]?.message}`);
    refunds.push(result.data);
  }
  return refundFacts(refunds, lookup.paymentIntentId);
}
