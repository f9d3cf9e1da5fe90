import type Stripe from 'stripe';
import { z } from 'zod';
import { invalidRequest, resourceMissing } from './errors.js';
import { newId } from './ids.js';
import {
  buildBalanceTransaction,
  buildCharge,
  buildCheckoutSession,
  buildDispute,
  buildPaymentIntent,
  buildRefund,
  unixNow,
  type PaymentIntentInput,
} from './resources.js';
import type { EmulatorEvent, EmulatorStore } from './store.js';

const positiveAmount = z.int().min(1).max(99_999_999);
const currency = z
  .string()
  .regex(/^[A-Za-z]{3}$/, 'must be a three-letter ISO currency code')
  .transform((value) => value.toLowerCase());

/** Body of the `succeed` control: what the customer paid, if not exactly the PaymentIntent. */
export const succeedInputSchema = z.strictObject({
  /** Simulates a payment of another amount than the PaymentIntent's (default: its `amount`). */
  amount_received: positiveAmount.optional(),
  /** Simulates a payment in another currency (default: the PaymentIntent's). */
  currency: currency.optional(),
  /** Also complete a Checkout Session for the payment (`checkout.session.completed`). */
  checkout: z.boolean().optional(),
});
/** Body of the `fail` control: the decline to report. */
export const failInputSchema = z.strictObject({
  code: z.string().min(1).optional(),
  decline_code: z.string().min(1).optional(),
  message: z.string().min(1).optional(),
});
/** Body of the `cancel` control. */
export const cancelInputSchema = z.strictObject({
  cancellation_reason: z.enum(['abandoned', 'duplicate', 'fraudulent', 'requested_by_customer']).optional(),
});
/** Body of the `refund` control; `amount` defaults to what is left to refund. */
export const refundInputSchema = z.strictObject({
  amount: positiveAmount.optional(),
  reason: z.enum(['duplicate', 'fraudulent', 'requested_by_customer']).optional(),
});
/** Body of the fail-refund control: a refund that failed (the bank returned it) or was canceled. */
export const failRefundInputSchema = z.strictObject({
  status: z.enum(['failed', 'canceled']).optional(),
  failure_reason: z.enum(['lost_or_stolen_card', 'expired_or_canceled_card', 'unknown']).optional(),
});
/** Body of `POST /v1/payment_intents/:id/cancel`. */
export type CancelParams = z.output<typeof cancelInputSchema>;
/** Body of the `dispute` control; `amount` defaults to what is left after refunds. */
export const disputeInputSchema = z.strictObject({
  amount: positiveAmount.optional(),
  reason: z.string().min(1).optional(),
});
/** Body of the close-dispute control: how the dispute ended. */
export const closeDisputeInputSchema = z.strictObject({ status: z.enum(['won', 'lost']) });

/** The objects a control changed or made, and the ids of the events it emitted, oldest first. */
export interface ControlResult {
  payment_intent?: Stripe.PaymentIntent;
  charge?: Stripe.Charge;
  checkout_session?: Stripe.Checkout.Session;
  refund?: Stripe.Refund;
  dispute?: Stripe.Dispute;
  events: string[];
}

const OPEN_DISPUTE_STATUSES: ReadonlySet<string> = new Set([
  'needs_response',
  'under_review',
  'warning_needs_response',
  'warning_under_review',
]);

/**
 * What happens to payments: the API's create, and what a customer, a bank or Stripe does later
 * (pay, decline, refund, dispute), each emitting the events Stripe emits for it. Every method runs
 * synchronously, so an object and its events change together.
 */
export class PaymentFlows {
  constructor(private readonly store: EmulatorStore) {}

  /** `POST /v1/payment_intents`: a new PaymentIntent and its `payment_intent.created` event. */
  createPaymentIntent(input: PaymentIntentInput, request: Stripe.Event.Request): Stripe.PaymentIntent {
    const paymentIntent = buildPaymentIntent(input);
    this.store.paymentIntents.set(paymentIntent.id, paymentIntent);
    this.store.recordEvent('payment_intent.created', paymentIntent, { request });
    return paymentIntent;
  }

  /** The customer paid: a charge, `charge.succeeded`, `payment_intent.succeeded` (and checkout). */
  succeed(id: string, input: z.output<typeof succeedInputSchema>): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    requireStatus(paymentIntent, ['requires_payment_method', 'requires_confirmation', 'requires_action', 'processing'], 'succeed');
    const amount = input.amount_received ?? paymentIntent.amount;
    const paidCurrency = input.currency ?? paymentIntent.currency;
    const chargeId = newId('ch');
    const transaction = this.addBalanceTransaction({
      amount,
      currency: paidCurrency,
      source: chargeId,
      type: 'charge',
      reportingCategory: 'charge',
      description: paymentIntent.description,
    });
    const paymentMethod = newId('pm');
    const charge = buildCharge(paymentIntent, {
      id: chargeId,
      amount,
      currency: paidCurrency,
      paymentMethod,
      balanceTransaction: transaction.id,
    });
    this.store.charges.set(charge.id, charge);
    Object.assign(paymentIntent, {
      status: 'succeeded',
      amount_received: amount,
      currency: paidCurrency,
      latest_charge: charge.id,
      payment_method: paymentMethod,
      last_payment_error: null,
      processing: null,
    } satisfies Partial<Stripe.PaymentIntent>);
    // Stripe's order for a card payment: the charge, then the PaymentIntent, then Checkout.
    const events = [this.store.recordEvent('charge.succeeded', charge), this.store.recordEvent('payment_intent.succeeded', paymentIntent)];
    const result: ControlResult = { payment_intent: paymentIntent, charge, events: [] };
    if (input.checkout) {
      const session = buildCheckoutSession(paymentIntent);
      this.store.checkoutSessions.set(session.id, session);
      events.push(this.store.recordEvent('checkout.session.completed', session));
      result.checkout_session = session;
    }
    return snapshot(result, events);
  }

  /** The payment was declined: back to `requires_payment_method` with `last_payment_error`. */
  fail(id: string, input: z.output<typeof failInputSchema>): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    requireStatus(paymentIntent, ['requires_payment_method', 'requires_confirmation', 'requires_action', 'processing'], 'fail');
    const code = input.code ?? 'card_declined';
    Object.assign(paymentIntent, {
      status: 'requires_payment_method',
      processing: null,
      last_payment_error: {
        type: 'card_error',
        code,
        decline_code: input.decline_code ?? 'generic_decline',
        doc_url: `https://stripe.com/docs/error-codes/${code.replaceAll('_', '-')}`,
        message: input.message ?? 'Your card was declined.',
        payment_method_type: 'card',
      },
    } satisfies Partial<Stripe.PaymentIntent>);
    return snapshot({ payment_intent: paymentIntent, events: [] }, [
      this.store.recordEvent('payment_intent.payment_failed', paymentIntent),
    ]);
  }

  /** The PaymentIntent was canceled. */
  cancel(id: string, input: z.output<typeof cancelInputSchema>): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    requireStatus(
      paymentIntent,
      ['requires_payment_method', 'requires_capture', 'requires_confirmation', 'requires_action', 'processing'],
      'cancel',
    );
    Object.assign(paymentIntent, {
      status: 'canceled',
      canceled_at: unixNow(),
      cancellation_reason: input.cancellation_reason ?? null,
      processing: null,
    } satisfies Partial<Stripe.PaymentIntent>);
    return snapshot({ payment_intent: paymentIntent, events: [] }, [this.store.recordEvent('payment_intent.canceled', paymentIntent)]);
  }

  /** The payment is on its way but not settled (as with bank debits). */
  markProcessing(id: string): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    requireStatus(paymentIntent, ['requires_payment_method', 'requires_confirmation', 'requires_action'], 'mark as processing');
    Object.assign(paymentIntent, {
      status: 'processing',
      processing: { type: 'card', card: {} },
    } satisfies Partial<Stripe.PaymentIntent>);
    return snapshot({ payment_intent: paymentIntent, events: [] }, [this.store.recordEvent('payment_intent.processing', paymentIntent)]);
  }

  /** A refund of the PaymentIntent's charge: `refund.created`, then `charge.refunded`. */
  refund(id: string, input: z.output<typeof refundInputSchema>): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    const charge = this.paidCharge(paymentIntent, 'refund');
    if (charge.disputed) {
      throw invalidRequest(`Charge ${charge.id} has been charged back; cannot issue a refund.`, { code: 'charge_disputed' });
    }
    const remaining = charge.amount - charge.amount_refunded;
    if (remaining === 0) {
      throw invalidRequest(`Charge ${charge.id} has already been refunded.`, { code: 'charge_already_refunded' });
    }
    const amount = input.amount ?? remaining;
    if (amount > remaining) {
      throw invalidRequest(`Refund amount (${amount}) is greater than unrefunded amount on charge (${remaining}).`, {
        code: 'amount_too_large',
        param: 'amount',
      });
    }
    const refundId = newId('re');
    const transaction = this.addBalanceTransaction({
      amount: -amount,
      currency: charge.currency,
      source: refundId,
      type: 'refund',
      reportingCategory: 'refund',
      description: 'REFUND FOR CHARGE',
    });
    const refund = buildRefund(charge, { id: refundId, amount, reason: input.reason ?? null, balanceTransaction: transaction.id });
    this.store.refunds.set(refund.id, refund);
    const refunds = charge.refunds?.data ?? [];
    const previousAttributes: Partial<Stripe.Charge> = {
      amount_refunded: charge.amount_refunded,
      refunds: { object: 'list', data: [...refunds], has_more: false, url: `/v1/charges/${charge.id}/refunds` },
    };
    charge.amount_refunded += amount;
    charge.refunds = { object: 'list', data: [refund, ...refunds], has_more: false, url: `/v1/charges/${charge.id}/refunds` };
    if (charge.amount_refunded === charge.amount) {
      previousAttributes.refunded = false;
      charge.refunded = true;
    }
    return snapshot({ refund, charge, payment_intent: paymentIntent, events: [] }, [
      this.store.recordEvent('refund.created', refund),
      this.store.recordEvent('charge.refunded', charge, { previousAttributes }),
    ]);
  }

  /**
   * A refund that failed or was canceled after it was created: the money goes back to the
   * merchant's balance (`refund_failure`), the charge's refunded amount drops, and Stripe emits
   * `refund.updated`, `refund.failed` (failures only) and `charge.refund.updated`.
   * https://docs.stripe.com/refunds#failed-refunds
   */
  failRefund(id: string, input: z.output<typeof failRefundInputSchema>): ControlResult {
    const refund = this.store.refunds.get(id);
    if (!refund) throw resourceMissing('refund', id, 'refund');
    if (refund.status === 'failed' || refund.status === 'canceled') {
      throw invalidRequest(`Refund ${id} has already ${refund.status === 'failed' ? 'failed' : 'been canceled'}.`, {
        code: 'refund_unexpected_state',
      });
    }
    const status = input.status ?? 'failed';
    const chargeId = typeof refund.charge === 'string' ? refund.charge : refund.charge?.id;
    const charge = chargeId ? this.store.charges.get(chargeId) : undefined;
    const previousAttributes: Partial<Stripe.Refund> = { status: refund.status };
    const transaction = this.addBalanceTransaction({
      amount: refund.amount,
      currency: refund.currency,
      source: refund.id,
      type: 'refund_failure',
      reportingCategory: 'refund_failure',
      description: 'REFUND FAILURE',
    });
    Object.assign(refund, {
      status,
      ...(status === 'failed' ? { failure_reason: input.failure_reason ?? 'unknown', failure_balance_transaction: transaction.id } : {}),
    } satisfies Partial<Stripe.Refund>);
    if (charge) {
      charge.amount_refunded -= refund.amount;
      charge.refunded = false;
      if (charge.refunds) charge.refunds.data = charge.refunds.data.map((listed) => (listed.id === refund.id ? refund : listed));
    }
    const events = [this.store.recordEvent('refund.updated', refund, { previousAttributes })];
    if (status === 'failed') events.push(this.store.recordEvent('refund.failed', refund));
    events.push(this.store.recordEvent('charge.refund.updated', refund, { previousAttributes }));
    return snapshot({ refund, ...(charge ? { charge } : {}), events: [] }, events);
  }

  /** The cardholder disputed the charge: the funds are withdrawn, `charge.dispute.created`. */
  dispute(id: string, input: z.output<typeof disputeInputSchema>): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    const charge = this.paidCharge(paymentIntent, 'dispute');
    if (charge.disputed) {
      throw invalidRequest(`Charge ${charge.id} already has a dispute.`, { code: 'charge_disputed' });
    }
    const remaining = charge.amount - charge.amount_refunded;
    const amount = input.amount ?? remaining;
    if (amount === 0 || amount > remaining) {
      throw invalidRequest(`A dispute on charge ${charge.id} can be for at most ${remaining}.`, {
        code: 'amount_too_large',
        param: 'amount',
      });
    }
    const disputeId = newId('dp');
    const transaction = this.addBalanceTransaction({
      amount: -amount,
      currency: charge.currency,
      source: disputeId,
      type: 'adjustment',
      reportingCategory: 'dispute',
      description: `Chargeback withdrawal for ${charge.id}`,
    });
    const dispute = buildDispute(charge, { id: disputeId, amount, reason: input.reason ?? 'fraudulent', balanceTransaction: transaction });
    this.store.disputes.set(dispute.id, dispute);
    charge.disputed = true;
    return snapshot({ dispute, charge, events: [] }, [this.store.recordEvent('charge.dispute.created', dispute)]);
  }

  /** The dispute ended: `won` gives the funds back, `lost` keeps them withdrawn. */
  closeDispute(id: string, input: z.output<typeof closeDisputeInputSchema>): ControlResult {
    const dispute = this.store.disputes.get(id);
    if (!dispute) throw resourceMissing('dispute', id, 'dispute');
    if (!OPEN_DISPUTE_STATUSES.has(dispute.status)) {
      throw invalidRequest(`This dispute is already closed (status ${dispute.status}).`, { code: 'dispute_already_closed' });
    }
    if (input.status === 'won') {
      dispute.balance_transactions.push(
        this.addBalanceTransaction({
          amount: dispute.amount,
          currency: dispute.currency,
          source: dispute.id,
          type: 'adjustment',
          reportingCategory: 'dispute_reversal',
          description: `Chargeback reversal for ${typeof dispute.charge === 'string' ? dispute.charge : dispute.charge.id}`,
        }),
      );
    }
    const previousAttributes: Partial<Stripe.Dispute> = { status: dispute.status };
    dispute.status = input.status;
    return snapshot({ dispute, events: [] }, [this.store.recordEvent('charge.dispute.closed', dispute, { previousAttributes })]);
  }

  private paymentIntent(id: string): Stripe.PaymentIntent {
    const paymentIntent = this.store.paymentIntents.get(id);
    if (!paymentIntent) throw resourceMissing('payment_intent', id, 'intent');
    return paymentIntent;
  }

  private paidCharge(paymentIntent: Stripe.PaymentIntent, action: string): Stripe.Charge {
    const chargeId = paymentIntent.latest_charge;
    const charge = paymentIntent.status === 'succeeded' && typeof chargeId === 'string' ? this.store.charges.get(chargeId) : undefined;
    if (!charge) {
      throw invalidRequest(`PaymentIntent ${paymentIntent.id} has no successful charge to ${action}.`, {
        code: 'payment_intent_unexpected_state',
      });
    }
    return charge;
  }

  private addBalanceTransaction(input: Parameters<typeof buildBalanceTransaction>[0]): Stripe.BalanceTransaction {
    const transaction = buildBalanceTransaction(input);
    this.store.balanceTransactions.set(transaction.id, transaction);
    return transaction;
  }
}

function requireStatus(paymentIntent: Stripe.PaymentIntent, allowed: Stripe.PaymentIntent.Status[], action: string): void {
  if (!allowed.includes(paymentIntent.status)) {
    throw invalidRequest(
      `You cannot ${action} this PaymentIntent because it has a status of ${paymentIntent.status}. ` +
        `Only a PaymentIntent with one of the following statuses may be changed this way: ${allowed.join(', ')}.`,
      { code: 'payment_intent_unexpected_state' },
    );
  }
}

/** Copies the result so callers never hold the store's live objects. */
function snapshot(result: ControlResult, events: EmulatorEvent[]): ControlResult {
  return { ...structuredClone(result), events: events.map((event) => event.id) };
}
