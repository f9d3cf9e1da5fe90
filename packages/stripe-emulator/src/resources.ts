import type Stripe from 'stripe';
import { newId, randomToken } from './ids.js';
import type { PresentmentDetails } from './versions.js';

// Builders for the objects the emulator serves. Each one follows Stripe's example object for its
// type in the API reference (the same objects as test/fixtures/stripe/*.json) and is typed with the
// stripe SDK's own interface, so a field Stripe requires cannot go missing. Values are those of a
// test-mode card payment.

/** Unix time in seconds, Stripe's `created`. */
export function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** Validated `POST /v1/payment_intents` parameters. */
export interface PaymentIntentInput {
  amount: number;
  currency: string;
  /** `manual`: the payment is authorized first and captured later (`requires_capture`). */
  capture_method: Stripe.PaymentIntent.CaptureMethod | undefined;
  metadata: Record<string, string>;
  automatic_payment_methods: Stripe.PaymentIntent.AutomaticPaymentMethods | undefined;
}

/** A new PaymentIntent in `requires_payment_method`. */
export function buildPaymentIntent(input: PaymentIntentInput): Stripe.PaymentIntent {
  const id = newId('pi');
  // Since API version 2023-08-16 Stripe turns automatic payment methods on unless types are listed.
  const automaticPaymentMethods = input.automatic_payment_methods ?? { enabled: true, allow_redirects: 'always' as const };
  return {
    id,
    object: 'payment_intent',
    allowed_payment_method_types: null,
    amount: input.amount,
    amount_capturable: 0,
    amount_details: { tip: {} },
    amount_received: 0,
    application: null,
    application_fee_amount: null,
    automatic_payment_methods: automaticPaymentMethods,
    canceled_at: null,
    cancellation_reason: null,
    capture_method: input.capture_method ?? 'automatic_async',
    client_secret: `${id}_secret_${randomToken(25)}`,
    confirmation_method: 'automatic',
    created: unixNow(),
    currency: input.currency,
    customer: null,
    customer_account: null,
    description: null,
    excluded_payment_method_types: null,
    last_payment_error: null,
    latest_charge: null,
    livemode: false,
    managed_payments: null,
    metadata: input.metadata,
    next_action: null,
    on_behalf_of: null,
    payment_method: null,
    payment_method_configuration_details: null,
    payment_method_options: {},
    payment_method_types: ['card'],
    payment_record: null,
    processing: null,
    receipt_email: null,
    review: null,
    setup_future_usage: null,
    shipping: null,
    source: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: 'requires_payment_method',
    transfer_data: null,
    transfer_group: null,
  };
}

/** What a balance transaction records. */
export interface BalanceTransactionInput {
  amount: number;
  currency: string;
  source: string;
  type: Stripe.BalanceTransaction.Type;
  reportingCategory: string;
  description: string | null;
}

/** A settled balance transaction without fees (test mode charges none worth emulating). */
export function buildBalanceTransaction(input: BalanceTransactionInput): Stripe.BalanceTransaction {
  const created = unixNow();
  return {
    id: newId('txn'),
    object: 'balance_transaction',
    amount: input.amount,
    available_on: created,
    balance_type: 'payments',
    created,
    currency: input.currency,
    description: input.description,
    exchange_rate: null,
    fee: 0,
    fee_details: [],
    net: input.amount,
    reporting_category: input.reportingCategory,
    source: input.source,
    status: 'available',
    type: input.type,
  };
}

/** A captured test card charge (Visa 4242) paying `paymentIntent`. */
export function buildCharge(
  paymentIntent: Stripe.PaymentIntent,
  payment: { id: string; amount: number; currency: string; paymentMethod: string; balanceTransaction: string },
): Stripe.Charge {
  return {
    id: payment.id,
    object: 'charge',
    amount: payment.amount,
    amount_captured: payment.amount,
    amount_refunded: 0,
    application: null,
    application_fee: null,
    application_fee_amount: null,
    balance_transaction: payment.balanceTransaction,
    billing_details: {
      address: { city: null, country: null, line1: null, line2: null, postal_code: null, state: null },
      email: null,
      name: null,
      phone: null,
      tax_id: null,
    },
    calculated_statement_descriptor: 'STRIPE EMULATOR',
    captured: true,
    created: unixNow(),
    currency: payment.currency,
    customer: null,
    description: paymentIntent.description,
    disputed: false,
    failure_balance_transaction: null,
    failure_code: null,
    failure_message: null,
    fraud_details: {},
    livemode: false,
    metadata: {},
    on_behalf_of: null,
    outcome: {
      advice_code: null,
      network_advice_code: null,
      network_decline_code: null,
      network_status: 'approved_by_network',
      reason: null,
      risk_level: 'normal',
      risk_score: 12,
      seller_message: 'Payment complete.',
      type: 'authorized',
    },
    paid: true,
    payment_intent: paymentIntent.id,
    payment_method: payment.paymentMethod,
    payment_method_details: {
      card: {
        amount_authorized: payment.amount,
        authorization_code: null,
        brand: 'visa',
        checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: 'pass' },
        country: 'US',
        electronic_commerce_indicator: null,
        exp_month: 12,
        exp_year: new Date().getUTCFullYear() + 3,
        extended_authorization: { status: 'disabled' },
        fingerprint: 'EmuLat0rF1ngerPr',
        funding: 'credit',
        incremental_authorization: { status: 'unavailable' },
        installments: null,
        last4: '4242',
        mandate: null,
        multicapture: { status: 'unavailable' },
        network: 'visa',
        network_token: { used: false },
        network_transaction_id: null,
        overcapture: { maximum_amount_capturable: payment.amount, status: 'unavailable' },
        regulated_status: 'unregulated',
        three_d_secure: null,
        transaction_link_id: null,
        wallet: null,
      },
      type: 'card',
    },
    receipt_email: paymentIntent.receipt_email,
    receipt_number: null,
    receipt_url: null,
    refunded: false,
    review: null,
    shipping: null,
    source: null,
    source_transfer: null,
    statement_descriptor: paymentIntent.statement_descriptor,
    statement_descriptor_suffix: paymentIntent.statement_descriptor_suffix,
    status: 'succeeded',
    transfer_data: null,
    transfer_group: paymentIntent.transfer_group,
  };
}

/** A card refund that succeeded at once, as test-mode card refunds do. */
export function buildRefund(
  charge: Stripe.Charge,
  refund: { id: string; amount: number; reason: Stripe.Refund.Reason | null; balanceTransaction: string },
): Stripe.Refund {
  return {
    id: refund.id,
    object: 'refund',
    amount: refund.amount,
    balance_transaction: refund.balanceTransaction,
    charge: charge.id,
    created: unixNow(),
    currency: charge.currency,
    customer: null,
    customer_account: null,
    destination_details: {
      card: { reference: randomToken(16), reference_status: 'available', reference_type: 'acquirer_reference_number', type: 'refund' },
      type: 'card',
    },
    metadata: {},
    payment_intent: typeof charge.payment_intent === 'string' ? charge.payment_intent : null,
    payment_method: charge.payment_method,
    reason: refund.reason,
    receipt_number: null,
    source_transfer_reversal: null,
    status: 'succeeded',
    transfer_reversal: null,
  };
}

/**
 * A dispute opened on `charge`, waiting for the merchant's evidence: a chargeback (`needs_response`,
 * with the withdrawal in `balance_transactions` unless the payment method withdraws nothing) or an
 * inquiry (`warning_needs_response`, no money moved). https://docs.stripe.com/disputes/how-disputes-work
 */
export function buildDispute(
  charge: Stripe.Charge,
  dispute: { id: string; amount: number; reason: string; inquiry: boolean; balanceTransactions: Stripe.BalanceTransaction[] },
): Stripe.Dispute {
  const created = unixNow();
  return {
    id: dispute.id,
    object: 'dispute',
    amount: dispute.amount,
    balance_transactions: dispute.balanceTransactions,
    charge: charge.id,
    created,
    currency: charge.currency,
    enhanced_eligibility_types: [],
    evidence: {
      access_activity_log: null,
      billing_address: null,
      cancellation_policy: null,
      cancellation_policy_disclosure: null,
      cancellation_rebuttal: null,
      customer_communication: null,
      customer_email_address: null,
      customer_name: null,
      customer_purchase_ip: null,
      customer_signature: null,
      duplicate_charge_documentation: null,
      duplicate_charge_explanation: null,
      duplicate_charge_id: null,
      enhanced_evidence: {},
      product_description: null,
      receipt: null,
      refund_policy: null,
      refund_policy_disclosure: null,
      refund_refusal_explanation: null,
      service_date: null,
      service_documentation: null,
      shipping_address: null,
      shipping_carrier: null,
      shipping_date: null,
      shipping_documentation: null,
      shipping_tracking_number: null,
      uncategorized_file: null,
      uncategorized_text: null,
    },
    evidence_details: {
      due_by: created + 7 * 24 * 60 * 60,
      enhanced_eligibility: {},
      has_evidence: false,
      past_due: false,
      submission_count: 0,
      submission_method: 'not_submitted',
    },
    intended_submission_method: null,
    is_charge_refundable: false,
    livemode: false,
    metadata: {},
    payment_intent: typeof charge.payment_intent === 'string' ? charge.payment_intent : null,
    payment_method_details: {
      card: { brand: 'visa', case_type: dispute.inquiry ? 'inquiry' : 'chargeback', network: 'visa', network_reason_code: '10.4' },
      type: 'card',
    },
    reason: dispute.reason,
    status: dispute.inquiry ? 'warning_needs_response' : 'needs_response',
  };
}

/**
 * A completed, paid Checkout Session in payment mode for `paymentIntent`, in the integration's
 * `price` (its amount and currency). With Adaptive Pricing the customer paid in another currency:
 * `presentment_details` says what (the full form; versions.ts renders it before basil).
 */
export function buildCheckoutSession(
  paymentIntent: Stripe.PaymentIntent,
  price: { amount: number; currency: string },
  presentment: PresentmentDetails | undefined,
): Stripe.Checkout.Session {
  const created = unixNow();
  return {
    id: newId('cs_test', 58),
    object: 'checkout.session',
    adaptive_pricing: { enabled: presentment !== undefined },
    after_expiration: null,
    allowed_payment_method_types: null,
    allow_promotion_codes: null,
    amount_subtotal: price.amount,
    amount_total: price.amount,
    automatic_tax: { enabled: false, liability: null, provider: null, status: null },
    billing_address_collection: null,
    cancel_url: null,
    client_reference_id: null,
    client_secret: null,
    collected_information: null,
    consent: null,
    consent_collection: null,
    created,
    currency: price.currency,
    currency_conversion: null,
    custom_fields: [],
    custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
    customer: null,
    customer_account: null,
    customer_creation: 'if_required',
    customer_details: {
      address: null,
      business_name: null,
      email: 'customer@example.com',
      individual_name: null,
      name: null,
      phone: null,
      tax_exempt: 'none',
      tax_ids: [],
    },
    customer_email: null,
    discounts: [],
    expires_at: created + 24 * 60 * 60,
    integration_identifier: null,
    invoice: null,
    invoice_creation: null,
    livemode: false,
    locale: null,
    managed_payments: null,
    metadata: { ...paymentIntent.metadata },
    mode: 'payment',
    origin_context: null,
    payment_intent: paymentIntent.id,
    payment_link: null,
    payment_method_collection: 'if_required',
    payment_method_configuration_details: null,
    payment_method_options: {},
    payment_method_types: paymentIntent.payment_method_types,
    payment_status: 'paid',
    permissions: null,
    ...(presentment ? { presentment_details: presentment } : {}),
    recovered_from: null,
    saved_payment_method_options: null,
    setup_intent: null,
    shipping_address_collection: null,
    shipping_cost: null,
    shipping_options: [],
    status: 'complete',
    submit_type: null,
    subscription: null,
    success_url: 'https://example.com/success',
    total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
    ui_mode: 'hosted',
    url: null,
    wallet_options: null,
  };
}
