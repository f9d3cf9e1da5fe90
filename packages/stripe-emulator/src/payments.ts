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
import type { EmulatorStore, StoredEvent } from './store.js';

const positiveAmount = z.int().min(1).max(99_999_999);
const currency = z
  .string()
  .regex(/^[A-Za-z]{3}$/, 'must be a three-letter ISO currency code')
  .transform((value) => value.toLowerCase());

/** Body of the `succeed` control: what the customer paid, if not exactly the PaymentIntent. */
export const succeedInputSchema = z
  .strictObject({
    /** Simulates a payment of another amount than the PaymentIntent's (default: its `amount`). */
    amount_received: positiveAmount.optional(),
    /** Simulates a payment in another currency (default: the PaymentIntent's). */
    currency: currency.optional(),
    /** Also complete a Checkout Session for the payment (`checkout.session.completed`). */
    checkout: z.boolean().optional(),
    /**
     * Adaptive Pricing (needs `checkout`): the customer paid this amount in this currency. The
     * PaymentIntent and charge are in it; the session keeps the PaymentIntent's original amount and
     * currency and says what the customer paid in `presentment_details` (basil and later).
     */
    presentment: z.strictObject({ currency, amount: positiveAmount }).optional(),
  })
  .refine((input) => !input.presentment || (input.checkout && !input.amount_received && !input.currency), {
    error: 'presentment needs checkout: true and excludes amount_received and currency',
    path: ['presentment'],
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
export const disputeInputSchema = z
  .strictObject({
    amount: positiveAmount.optional(),
    reason: z.string().min(1).optional(),
    /** An inquiry (`warning_needs_response`): no funds move unless it is escalated. */
    inquiry: z.boolean().optional(),
    /** `false`: a chargeback that withdraws nothing (some payment methods); default true. */
    withdrawFunds: z.boolean().optional(),
  })
  .refine((input) => !(input.inquiry && input.withdrawFunds), {
    error: 'an inquiry withdraws no funds (escalate it first)',
    path: ['withdrawFunds'],
  });
/** Body of the close-dispute control: how the dispute ended (an inquiry closes as `warning_closed`). */
export const closeDisputeInputSchema = z.strictObject({ status: z.enum(['won', 'lost']).optional() });
/** Body of the partially-fund control: what part of the amount arrived by bank transfer. */
export const partiallyFundInputSchema = z.strictObject({ amount: positiveAmount });
/** Body of the authorize control: what was authorized (default the PaymentIntent's amount). */
export const authorizeInputSchema = z.strictObject({ amount: positiveAmount.optional() });

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
    const price = { amount: paymentIntent.amount, currency: paymentIntent.currency };
    const presentment = input.presentment && {
      presentment_amount: input.presentment.amount,
      presentment_currency: input.presentment.currency,
    };
    const amount = input.presentment?.amount ?? input.amount_received ?? paymentIntent.amount;
    const paidCurrency = input.presentment?.currency ?? input.currency ?? paymentIntent.currency;
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
      // Adaptive Pricing's PaymentIntent is for what the customer pays, in their currency.
      ...(presentment ? { amount } : {}),
      amount_received: amount,
      currency: paidCurrency,
      latest_charge: charge.id,
      payment_method: paymentMethod,
      last_payment_error: null,
      next_action: null,
      processing: null,
    } satisfies Partial<Stripe.PaymentIntent>);
    // Stripe's order for a card payment: the charge, then the PaymentIntent, then Checkout.
    const events = [this.store.recordEvent('charge.succeeded', charge), this.store.recordEvent('payment_intent.succeeded', paymentIntent)];
    const result: ControlResult = { payment_intent: paymentIntent, charge, events: [] };
    if (input.checkout) {
      const session = buildCheckoutSession(paymentIntent, price, presentment);
      this.store.checkoutSessions.set(session.id, session);
      events.push(this.store.recordEvent('checkout.session.completed', session));
      result.checkout_session = session;
    }
    return this.snapshot(result, events);
  }

  /**
   * Part of a bank transfer arrived (https://docs.stripe.com/payments/customer-balance): the
   * PaymentIntent stays `requires_action` with what is left in
   * `next_action.display_bank_transfer_instructions.amount_remaining`; `payment_intent.partially_funded`.
   * Nothing is paid yet: the merchant's balance does not move until the PaymentIntent succeeds.
   */
  partiallyFund(id: string, input: z.output<typeof partiallyFundInputSchema>): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    requireStatus(paymentIntent, ['requires_payment_method', 'requires_confirmation', 'requires_action'], 'partially fund');
    const remaining = paymentIntent.next_action?.display_bank_transfer_instructions?.amount_remaining ?? paymentIntent.amount;
    if (input.amount >= remaining) {
      throw invalidRequest(
        `A partial funding must be less than the ${remaining} left to pay; use the succeed control for the whole amount.`,
        { code: 'amount_too_large', param: 'amount' },
      );
    }
    Object.assign(paymentIntent, {
      status: 'requires_action',
      payment_method_types: ['customer_balance'],
      next_action: {
        type: 'display_bank_transfer_instructions',
        display_bank_transfer_instructions: {
          amount_remaining: remaining - input.amount,
          currency: paymentIntent.currency,
          financial_addresses: [],
          hosted_instructions_url: `https://payments.stripe.com/bank_transfers/instructions/${paymentIntent.id}`,
          reference: paymentIntent.id.slice(3, 13).toUpperCase(),
          type: 'us_bank_transfer',
        },
      },
    } satisfies Partial<Stripe.PaymentIntent>);
    return this.snapshot({ payment_intent: paymentIntent, events: [] }, [
      this.store.recordEvent('payment_intent.partially_funded', paymentIntent),
    ]);
  }

  /**
   * The card was authorized for a PaymentIntent with `capture_method: manual`
   * (https://docs.stripe.com/payments/place-a-hold-on-a-payment-method): `requires_capture`,
   * `amount_capturable` set, `payment_intent.amount_capturable_updated`. No money is captured.
   */
  authorize(id: string, input: z.output<typeof authorizeInputSchema>): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    if (paymentIntent.capture_method !== 'manual') {
      throw invalidRequest(
        `PaymentIntent ${id} has capture_method ${paymentIntent.capture_method}; only manual capture is authorized first.`,
        {
          code: 'payment_intent_unexpected_state',
        },
      );
    }
    requireStatus(paymentIntent, ['requires_payment_method', 'requires_confirmation', 'requires_action'], 'authorize');
    const amount = input.amount ?? paymentIntent.amount;
    if (amount > paymentIntent.amount) {
      throw invalidRequest(`The authorized amount (${amount}) is more than the PaymentIntent's (${paymentIntent.amount}).`, {
        code: 'amount_too_large',
        param: 'amount',
      });
    }
    Object.assign(paymentIntent, {
      status: 'requires_capture',
      amount_capturable: amount,
      payment_method: paymentIntent.payment_method ?? newId('pm'),
      last_payment_error: null,
      processing: null,
    } satisfies Partial<Stripe.PaymentIntent>);
    return this.snapshot({ payment_intent: paymentIntent, events: [] }, [
      this.store.recordEvent('payment_intent.amount_capturable_updated', paymentIntent),
    ]);
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
    return this.snapshot({ payment_intent: paymentIntent, events: [] }, [
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
    return this.snapshot({ payment_intent: paymentIntent, events: [] }, [this.store.recordEvent('payment_intent.canceled', paymentIntent)]);
  }

  /** The payment is on its way but not settled (as with bank debits). */
  markProcessing(id: string): ControlResult {
    const paymentIntent = this.paymentIntent(id);
    requireStatus(paymentIntent, ['requires_payment_method', 'requires_confirmation', 'requires_action'], 'mark as processing');
    Object.assign(paymentIntent, {
      status: 'processing',
      processing: { type: 'card', card: {} },
    } satisfies Partial<Stripe.PaymentIntent>);
    return this.snapshot({ payment_intent: paymentIntent, events: [] }, [
      this.store.recordEvent('payment_intent.processing', paymentIntent),
    ]);
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
    // In full form: versions before 2022-11-15 show the refunds list before this refund too.
    const previousAttributes: Record<string, unknown> = {
      amount_refunded: charge.amount_refunded,
      refunds: this.store.refundList(charge.id),
    };
    this.store.refunds.set(refund.id, refund);
    charge.amount_refunded += amount;
    if (charge.amount_refunded === charge.amount) {
      previousAttributes.refunded = false;
      charge.refunded = true;
    }
    return this.snapshot({ refund, charge, payment_intent: paymentIntent, events: [] }, [
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
    }
    const events = [this.store.recordEvent('refund.updated', refund, { previousAttributes })];
    if (status === 'failed') events.push(this.store.recordEvent('refund.failed', refund));
    events.push(this.store.recordEvent('charge.refund.updated', refund, { previousAttributes }));
    return this.snapshot({ refund, ...(charge ? { charge } : {}), events: [] }, events);
  }

  /**
   * The cardholder disputed the charge (https://docs.stripe.com/disputes): `charge.dispute.created`;
   * for a chargeback that withdraws funds, then `charge.dispute.funds_withdrawn` with the withdrawal
   * (reporting category `dispute`, negative) in `balance_transactions`. An inquiry moves no money.
   */
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
    const inquiry = input.inquiry ?? false;
    const withdraw = !inquiry && (input.withdrawFunds ?? true);
    const disputeId = newId('dp');
    const dispute = buildDispute(charge, {
      id: disputeId,
      amount,
      reason: input.reason ?? 'fraudulent',
      inquiry,
      balanceTransactions: withdraw ? [this.withdrawal(disputeId, amount, charge)] : [],
    });
    this.store.disputes.set(dispute.id, dispute);
    charge.disputed = true;
    const events = [this.store.recordEvent('charge.dispute.created', dispute)];
    if (withdraw) events.push(this.store.recordEvent('charge.dispute.funds_withdrawn', dispute));
    return this.snapshot({ dispute, charge, events: [] }, events);
  }

  /**
   * The inquiry became a chargeback: `needs_response`, the funds are withdrawn,
   * `charge.dispute.updated` then `charge.dispute.funds_withdrawn`.
   */
  escalateDispute(id: string): ControlResult {
    const dispute = this.findDispute(id);
    if (dispute.status !== 'warning_needs_response' && dispute.status !== 'warning_under_review') {
      throw invalidRequest(`Only an inquiry (status warning_*) can be escalated; this dispute has status ${dispute.status}.`, {
        code: 'dispute_unexpected_state',
      });
    }
    const charge = this.store.charges.get(chargeIdOf(dispute));
    const previousAttributes = { status: dispute.status, balance_transactions: [] };
    dispute.status = 'needs_response';
    dispute.balance_transactions = [this.withdrawal(dispute.id, dispute.amount, charge)];
    if (dispute.payment_method_details?.card) dispute.payment_method_details.card.case_type = 'chargeback';
    return this.snapshot({ dispute, events: [] }, [
      this.store.recordEvent('charge.dispute.updated', dispute, { previousAttributes }),
      this.store.recordEvent('charge.dispute.funds_withdrawn', dispute),
    ]);
  }

  /**
   * The dispute ended. `won` after a withdrawal gives the funds back (reporting category
   * `dispute_reversal`, positive): `charge.dispute.funds_reinstated`, then `charge.dispute.closed`.
   * `lost` keeps them: `charge.dispute.closed`. An inquiry closes as `warning_closed`, no money.
   */
  closeDispute(id: string, input: z.output<typeof closeDisputeInputSchema>): ControlResult {
    const dispute = this.findDispute(id);
    if (!OPEN_DISPUTE_STATUSES.has(dispute.status)) {
      throw invalidRequest(`This dispute is already closed (status ${dispute.status}).`, { code: 'dispute_already_closed' });
    }
    const inquiry = dispute.status.startsWith('warning_');
    if (!inquiry && input.status === undefined) {
      throw invalidRequest('Missing required param: status (won or lost).', { code: 'parameter_missing', param: 'status' });
    }
    const status: Stripe.Dispute.Status = inquiry ? 'warning_closed' : (input.status ?? 'lost');
    const previousAttributes = { status: dispute.status };
    const events: StoredEvent[] = [];
    dispute.status = status;
    if (status === 'won' && dispute.balance_transactions.length > 0) {
      dispute.balance_transactions.push(
        this.addBalanceTransaction({
          amount: dispute.amount,
          currency: dispute.currency,
          source: dispute.id,
          type: 'adjustment',
          reportingCategory: 'dispute_reversal',
          description: `Chargeback reversal for ${chargeIdOf(dispute)}`,
        }),
      );
      events.push(this.store.recordEvent('charge.dispute.funds_reinstated', dispute));
    }
    events.push(this.store.recordEvent('charge.dispute.closed', dispute, { previousAttributes }));
    return this.snapshot({ dispute, events: [] }, events);
  }

  private findDispute(id: string): Stripe.Dispute {
    const dispute = this.store.disputes.get(id);
    if (!dispute) throw resourceMissing('dispute', id, 'dispute');
    return dispute;
  }

  private withdrawal(disputeId: string, amount: number, charge: Stripe.Charge | undefined): Stripe.BalanceTransaction {
    return this.addBalanceTransaction({
      amount: -amount,
      currency: charge?.currency ?? 'usd',
      source: disputeId,
      type: 'adjustment',
      reportingCategory: 'dispute',
      description: `Chargeback withdrawal for ${charge?.id ?? 'charge'}`,
    });
  }

  /** Copies the result, rendered at the account's version, so callers never hold the store's live objects. */
  private snapshot(result: ControlResult, events: StoredEvent[]): ControlResult {
    const { events: _ids, ...objects } = result;
    const rendered = Object.entries(objects).map(([key, object]) => [key, this.store.render(object)]);
    return { ...(Object.fromEntries(rendered) as Omit<ControlResult, 'events'>), events: events.map((event) => event.id) };
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

function chargeIdOf(dispute: Stripe.Dispute): string {
  return typeof dispute.charge === 'string' ? dispute.charge : dispute.charge.id;
}
