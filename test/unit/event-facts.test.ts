import { readFileSync } from 'node:fs';
import { HANDLED_EVENT_TYPES, stripeEventJobData } from '@ledger/shared';
import type { PaymentFact } from '@ledger/ledger';
import { describe, expect, it } from 'vitest';
import { MalformedEventError, paymentFactsFromEvent } from '../../apps/order-worker/src/facts/from-event.js';

// Pure: Stripe's own full-size example objects (test/fixtures/stripe), every handled event type ×
// every status its object can have (and every mode, for Checkout). Milliseconds, no services.
const fixture = (name: string) => JSON.parse(readFileSync(`test/fixtures/stripe/${name}.json`, 'utf8')) as Record<string, unknown>;
const PI = 'pi_3FactsTestPayment';
const metadata = { order_id: 'ord_factstest00000000000000', account_id: 'acct_facts', note: 'anything else' };

const objects = {
  paymentIntent: (status: string) => ({
    ...fixture('payment_intent'),
    id: PI,
    amount: 1_000,
    amount_received: status === 'succeeded' ? 1_000 : 0,
    currency: 'usd',
    status,
    metadata,
  }),
  checkoutSession: (payment_status: string, mode = 'payment') => ({
    ...fixture('checkout_session'),
    id: 'cs_test_facts',
    mode,
    payment_status,
    payment_intent: PI,
    amount_total: 1_000,
    currency: 'usd',
    metadata,
  }),
  refund: (status: string) => ({ ...fixture('refund'), id: 're_facts', amount: 400, currency: 'usd', status, payment_intent: PI }),
  charge: (refundStatuses: string[]) => ({
    ...fixture('charge'),
    id: 'ch_facts',
    currency: 'usd',
    payment_intent: { id: PI, object: 'payment_intent' },
    refunds: {
      object: 'list',
      data: refundStatuses.map((status, index) => ({ ...fixture('refund'), id: `re_facts${index}`, amount: 100, currency: 'usd', status })),
    },
  }),
  dispute: (status: string) => ({ ...fixture('dispute'), id: 'dp_facts', amount: 1_000, currency: 'usd', status, payment_intent: PI }),
};

const event = (type: string, object: Record<string, unknown>) => ({
  id: 'evt_facts',
  type,
  created: 1_800_000_000,
  livemode: false,
  data: { object },
});
const factsOf = (type: string, object: Record<string, unknown>) => paymentFactsFromEvent(stripeEventJobData(event(type, object)));

const PI_STATUSES = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'processing',
  'requires_capture',
  'canceled',
  'succeeded',
];
const REFUND_STATUSES = ['pending', 'requires_action', 'succeeded', 'failed', 'canceled'];
const CHECKOUT_PAYMENT_STATUSES = ['paid', 'unpaid', 'no_payment_required'];
const DISPUTE_TYPES = [
  'charge.dispute.created',
  'charge.dispute.updated',
  'charge.dispute.closed',
  'charge.dispute.funds_withdrawn',
  'charge.dispute.funds_reinstated',
];
const DISPUTE_STATUSES = [
  'warning_needs_response',
  'warning_under_review',
  'warning_closed',
  'needs_response',
  'under_review',
  'won',
  'lost',
];

describe('paymentFactsFromEvent', () => {
  it.each(PI_STATUSES)('payment_intent.succeeded with status %s', (status) => {
    const facts = factsOf('payment_intent.succeeded', objects.paymentIntent(status));
    expect(facts).toEqual(
      status === 'succeeded'
        ? [{ kind: 'payment_succeeded', paymentIntentId: PI, orderId: metadata.order_id, amount: 1_000, currency: 'usd' }]
        : [],
    );
  });

  // The event type says what happened; the object's status (which may have moved on since) does not.
  it.each(
    (
      [
        ['payment_intent.processing', 'processing'],
        ['payment_intent.payment_failed', 'payment_failed'],
        ['payment_intent.canceled', 'canceled'],
      ] as const
    ).flatMap(([type, to]) => PI_STATUSES.map((status) => [type, status, to] as const)),
  )('%s with status %s → progress %s', (type, status, to) => {
    expect(factsOf(type, objects.paymentIntent(status))).toEqual([
      { kind: 'payment_progress', paymentIntentId: PI, orderId: metadata.order_id, to },
    ]);
  });

  // Only payment-mode sessions pay an order; a completed session pays once it is paid (or needs no
  // payment); an unpaid completion settles later through the async events.
  const CHECKOUT_CASES = [
    ['checkout.session.completed', 'paid', 'payment', 'payment_succeeded'],
    ['checkout.session.completed', 'no_payment_required', 'payment', 'payment_succeeded'],
    ['checkout.session.completed', 'unpaid', 'payment', undefined],
    ['checkout.session.async_payment_succeeded', 'paid', 'payment', 'payment_succeeded'],
    ['checkout.session.async_payment_succeeded', 'no_payment_required', 'payment', 'payment_succeeded'],
    ['checkout.session.async_payment_succeeded', 'unpaid', 'payment', undefined],
    ['checkout.session.async_payment_failed', 'paid', 'payment', 'payment_progress'],
    ['checkout.session.async_payment_failed', 'no_payment_required', 'payment', 'payment_progress'],
    ['checkout.session.async_payment_failed', 'unpaid', 'payment', 'payment_progress'],
    ...['checkout.session.completed', 'checkout.session.async_payment_succeeded', 'checkout.session.async_payment_failed'].flatMap((type) =>
      ['setup', 'subscription'].flatMap((mode) =>
        CHECKOUT_PAYMENT_STATUSES.map((paymentStatus) => [type, paymentStatus, mode, undefined] as const),
      ),
    ),
  ] as const;

  it.each(CHECKOUT_CASES)('%s, payment_status %s, mode %s → %s', (type, paymentStatus, mode, kind) => {
    const facts = factsOf(type, objects.checkoutSession(paymentStatus, mode));
    expect(facts).toEqual(
      kind === 'payment_succeeded'
        ? [{ kind, paymentIntentId: PI, orderId: metadata.order_id, amount: 1_000, currency: 'usd' }]
        : kind === 'payment_progress'
          ? [{ kind, paymentIntentId: PI, orderId: metadata.order_id, to: 'payment_failed' }]
          : [],
    );
  });

  it('a checkout session without a PaymentIntent reports nothing', () => {
    for (const type of [
      'checkout.session.completed',
      'checkout.session.async_payment_succeeded',
      'checkout.session.async_payment_failed',
    ]) {
      expect(factsOf(type, { ...objects.checkoutSession('paid'), payment_intent: null }), type).toEqual([]);
    }
  });

  it.each(
    ['refund.created', 'refund.updated', 'refund.failed', 'charge.refund.updated'].flatMap((type) =>
      REFUND_STATUSES.map((status) => [type, status]),
    ),
  )('%s with status %s', (type, status) => {
    expect(factsOf(type, objects.refund(status))).toEqual([
      {
        kind: 'refund',
        refundId: 're_facts',
        paymentIntentId: PI,
        amount: 400,
        currency: 'usd',
        status: status === 'failed' || status === 'canceled' ? 'reversed' : 'debited',
      },
    ]);
  });

  it.each(REFUND_STATUSES)('charge.refunded listing a refund with status %s', (status) => {
    expect(factsOf('charge.refunded', objects.charge([status]))).toEqual([
      {
        kind: 'refund',
        refundId: 're_facts0',
        paymentIntentId: PI,
        amount: 100,
        currency: 'usd',
        status: status === 'failed' || status === 'canceled' ? 'reversed' : 'debited',
      },
    ]);
  });

  it('charge.refunded without its refunds (API versions from 2022-11-15) or with only the first 10 asks Stripe for them', () => {
    const { refunds: _, ...withoutList } = objects.charge([]);
    const ask = { lookup: 'charge_refunds', chargeId: 'ch_facts', paymentIntentId: PI };
    expect(factsOf('charge.refunded', withoutList)).toEqual(ask);
    expect(factsOf('charge.refunded', { ...withoutList, refunds: null })).toEqual(ask);
    const ten = objects.charge(Array.from({ length: 10 }, () => 'succeeded'));
    expect(factsOf('charge.refunded', { ...ten, refunds: { ...ten.refunds, has_more: true } })).toEqual(ask);
    // A complete old-version list is read as it is.
    expect(factsOf('charge.refunded', { ...ten, refunds: { ...ten.refunds, has_more: false } })).toHaveLength(10);
    expect(factsOf('charge.refunded', objects.charge([]))).toEqual([]);
  });

  it('a Checkout Session paid in the customer currency (Adaptive Pricing) asks for the PaymentIntent, before and after basil', () => {
    const ask = { lookup: 'payment_intent', paymentIntentId: PI, orderId: metadata.order_id };
    // basil on: the session stays in the integration currency, the customer's is in presentment_details.
    const basil = { ...objects.checkoutSession('paid'), presentment_details: { presentment_amount: 920, presentment_currency: 'eur' } };
    expect(factsOf('checkout.session.completed', basil)).toEqual(ask);
    // Before basil: the session is in the customer's currency, the integration's in currency_conversion.
    const acacia = {
      ...objects.checkoutSession('paid'),
      currency: 'eur',
      amount_total: 920,
      currency_conversion: { amount_subtotal: 1_000, amount_total: 1_000, fx_rate: '0.92', source_currency: 'usd' },
    };
    expect(factsOf('checkout.session.completed', acacia)).toEqual(ask);
    // Presented in the session's own currency: nothing converted, the session's amounts are the payment's.
    const same = { ...objects.checkoutSession('paid'), presentment_details: { presentment_amount: 1_000, presentment_currency: 'USD' } };
    expect(factsOf('checkout.session.completed', same)).toEqual([
      { kind: 'payment_succeeded', paymentIntentId: PI, orderId: metadata.order_id, amount: 1_000, currency: 'usd' },
    ]);
  });

  it('refunds, charges and disputes of a payment made without a PaymentIntent report nothing', () => {
    for (const type of ['refund.created', 'refund.updated', 'refund.failed', 'charge.refund.updated'])
      expect(factsOf(type, { ...objects.refund('succeeded'), payment_intent: null }), type).toEqual([]);
    expect(factsOf('charge.refunded', { ...objects.charge(['succeeded']), payment_intent: null })).toEqual([]);
    for (const type of DISPUTE_TYPES) expect(factsOf(type, { ...objects.dispute('lost'), payment_intent: null }), type).toEqual([]);
  });

  it('every handled event type is in the tables above; any other type reports nothing', () => {
    const tested = new Set([
      'payment_intent.succeeded',
      'payment_intent.processing',
      'payment_intent.payment_failed',
      'payment_intent.canceled',
      ...CHECKOUT_CASES.map(([type]) => type),
      'refund.created',
      'refund.updated',
      'refund.failed',
      'charge.refund.updated',
      'charge.refunded',
      ...DISPUTE_TYPES,
    ]);
    expect(tested).toEqual(new Set(HANDLED_EVENT_TYPES));
    for (const type of [
      'payment_intent.created',
      'payment_intent.requires_action',
      'charge.succeeded',
      'checkout.session.expired',
      'customer.created',
      // Bank transfers and manual capture: money is not (yet) the merchant's.
      'payment_intent.partially_funded',
      'payment_intent.amount_capturable_updated',
    ]) {
      expect(
        paymentFactsFromEvent({ id: 'evt_other', type, created: 1, livemode: false, object: objects.paymentIntent('succeeded') }),
        type,
      ).toEqual([]);
    }
  });

  it("charge.refunded: one fact per refund it lists, with the charge's PaymentIntent even when expanded", () => {
    const facts = factsOf('charge.refunded', objects.charge(['succeeded', 'failed']));
    expect(facts).toEqual([
      { kind: 'refund', refundId: 're_facts0', paymentIntentId: PI, amount: 100, currency: 'usd', status: 'debited' },
      { kind: 'refund', refundId: 're_facts1', paymentIntentId: PI, amount: 100, currency: 'usd', status: 'reversed' },
    ]);
  });

  // The status says open / won / lost; inquiries (warning_*) withdraw nothing and report nothing.
  it.each(DISPUTE_TYPES.flatMap((type) => DISPUTE_STATUSES.map((status) => [type, status])))('%s with status %s', (type, status) => {
    const expected = status.startsWith('warning_') ? undefined : status === 'won' || status === 'lost' ? status : 'open';
    expect(
      (factsOf(type, objects.dispute(status)) as PaymentFact[]).map((fact) => (fact.kind === 'dispute' ? fact.to : fact.kind)),
    ).toEqual(expected ? [expected] : []);
  });

  // A dispute has zero, one or two balance transactions: https://docs.stripe.com/api/disputes/object
  const withdrawal = { ...fixture('balance_transaction'), amount: -1_000, reporting_category: 'dispute' };
  const reinstatement = { ...fixture('balance_transaction'), amount: 1_000, reporting_category: 'dispute_reversal' };
  it.each([
    ['charge.dispute.created', 'needs_response', [], 'none'],
    ['charge.dispute.created', 'needs_response', [withdrawal], 'withdrawn'],
    ['charge.dispute.funds_withdrawn', 'needs_response', [withdrawal], 'withdrawn'],
    ['charge.dispute.updated', 'under_review', [withdrawal], 'withdrawn'],
    ['charge.dispute.funds_reinstated', 'won', [withdrawal, reinstatement], 'reinstated'],
    ['charge.dispute.closed', 'won', [withdrawal, reinstatement], 'reinstated'],
    ['charge.dispute.closed', 'won', [], 'none'],
    ['charge.dispute.closed', 'lost', [withdrawal], 'withdrawn'],
    // The funds events say at least what they announce, whatever list the snapshot carries.
    ['charge.dispute.funds_withdrawn', 'needs_response', [], 'withdrawn'],
    ['charge.dispute.funds_reinstated', 'won', [withdrawal], 'reinstated'],
  ] as const)('%s, %s, with %j balance transactions: funds %s', (type, status, transactions, funds) => {
    const object = { ...objects.dispute(status), balance_transactions: transactions };
    expect(factsOf(type, object)).toEqual([
      {
        kind: 'dispute',
        disputeId: 'dp_facts',
        paymentIntentId: PI,
        amount: 1_000,
        currency: 'usd',
        to: status === 'won' || status === 'lost' ? status : 'open',
        funds,
      },
    ]);
  });

  it('a dispute for less than the charge debits the dispute amount', () => {
    const object = { ...objects.dispute('needs_response'), amount: 250, balance_transactions: [withdrawal] };
    expect(factsOf('charge.dispute.funds_withdrawn', object)).toMatchObject([{ amount: 250, funds: 'withdrawn' }]);
  });

  it('refuses an object that lacks what its type promises, as unrecoverable', () => {
    expect(() => factsOf('payment_intent.succeeded', { ...objects.paymentIntent('succeeded'), amount_received: -1 })).toThrow(
      MalformedEventError,
    );
    expect(() => factsOf('refund.created', { id: 're_x' })).toThrow(MalformedEventError);
  });
});

describe('the job payload', () => {
  const samples: [string, Record<string, unknown>][] = [
    ...PI_STATUSES.map((status) => ['payment_intent.succeeded', objects.paymentIntent(status)] as [string, Record<string, unknown>]),
    ['payment_intent.payment_failed', objects.paymentIntent('requires_payment_method')],
    ['checkout.session.completed', objects.checkoutSession('paid')],
    ['checkout.session.async_payment_failed', objects.checkoutSession('unpaid')],
    ...REFUND_STATUSES.map((status) => ['refund.updated', objects.refund(status)] as [string, Record<string, unknown>]),
    ['charge.refunded', objects.charge(['succeeded', 'canceled', 'pending'])],
    ...DISPUTE_STATUSES.map((status) => ['charge.dispute.closed', objects.dispute(status)] as [string, Record<string, unknown>]),
    ['charge.dispute.funds_reinstated', { ...objects.dispute('won'), balance_transactions: [fixture('balance_transaction')] }],
    ['charge.refunded', { ...objects.charge(['succeeded']), refunds: { ...objects.charge(['succeeded']).refunds, has_more: true } }],
    [
      'checkout.session.completed',
      { ...objects.checkoutSession('paid'), presentment_details: { presentment_amount: 9, presentment_currency: 'eur' } },
    ],
  ];

  it('keeps everything the worker reads: the facts of the compact job equal those of the full object', () => {
    for (const [type, object] of samples) {
      const full = paymentFactsFromEvent({ id: 'evt_full', type, created: 1, livemode: false, object });
      expect(factsOf(type, object), type).toEqual(full);
    }
    expect(new Set(samples.map(([type]) => type)).size).toBeGreaterThan(6);
    expect(HANDLED_EVENT_TYPES.length).toBeGreaterThan(0);
  });

  it('keeps nothing else: no client secret, no customer details, a fraction of the size', () => {
    const object = objects.paymentIntent('succeeded');
    const job = stripeEventJobData(event('payment_intent.succeeded', object));
    expect(JSON.stringify(job)).not.toMatch(/secret/i);
    expect(job.object.metadata).toEqual({ order_id: metadata.order_id, account_id: metadata.account_id });
    expect(JSON.stringify(job).length).toBeLessThan(JSON.stringify(object).length / 3);
  });
});
