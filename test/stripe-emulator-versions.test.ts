import Fastify from 'fastify';
import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { useEmulatorApps } from './helpers/emulator.js';

// API versions, several endpoints, the refunds API, dispute money events and thin v2 events, driven
// through the real stripe SDK and real HTTP receivers.

const OLD = '2022-08-01';

const { startEmulator, track } = useEmulatorApps();

async function startReceiver() {
  const deliveries: Array<{ raw: string; signature: string }> = [];
  const app = Fastify();
  track(app);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.post<{ Body: string }>('/webhooks', async (request) => {
    deliveries.push({ raw: request.body, signature: String(request.headers['stripe-signature']) });
    return { received: true };
  });
  const url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/webhooks`;
  const verified = (secret: string): Stripe.Event[] =>
    deliveries.map((delivery) => Stripe.webhooks.constructEvent(delivery.raw, delivery.signature, secret));
  return { url, deliveries, verified };
}

async function allEvents(stripe: Stripe, params: Stripe.EventListParams = {}): Promise<Stripe.Event[]> {
  const events: Stripe.Event[] = [];
  for await (const event of stripe.events.list({ limit: 100, ...params })) events.push(event);
  return events;
}

type Loose = Record<string, unknown> & { refunds?: { data: unknown[]; has_more: boolean; total_count: number } };

describe('stripe emulator: API versions', () => {
  it('lists each event at the version it was created at, after an account upgrade', async () => {
    const { stripe, controller, url } = await startEmulator({ apiVersion: OLD });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd' });
    controller.succeedPaymentIntent(paymentIntent.id);
    controller.refundPaymentIntent(paymentIntent.id, { amount: 1000 });

    const upgrade = await fetch(`${url}/_emulator/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: Stripe.API_VERSION }),
    });
    expect(upgrade.status).toBe(200);
    controller.refundPaymentIntent(paymentIntent.id, { amount: 1000 });

    const refunded = (await allEvents(stripe, { type: 'charge.refunded' })).reverse();
    expect(refunded.map((event) => event.api_version)).toEqual([OLD, Stripe.API_VERSION]);
    const [oldCharge, newCharge] = refunded.map((event) => event.data.object as unknown as Loose);
    expect(oldCharge?.refunds).toMatchObject({ object: 'list', has_more: false, total_count: 1 });
    expect(newCharge && 'refunds' in newCharge).toBe(false);
    const [oldSucceeded] = await allEvents(stripe, { type: 'payment_intent.succeeded' });
    expect(oldSucceeded?.data.object).toHaveProperty('charges');
    expect((oldSucceeded?.data.object as unknown as Record<string, unknown> | undefined)?.charges).toMatchObject({
      object: 'list',
      total_count: 1,
    });
    const retrieved = await stripe.events.retrieve(refunded[0]?.id ?? '');
    expect(retrieved.api_version).toBe(OLD);
  });

  it('shows at most 10 refunds inline before 2022-11-15, with has_more', async () => {
    const { stripe, controller } = await startEmulator({ apiVersion: OLD });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 1200, currency: 'usd' });
    controller.succeedPaymentIntent(paymentIntent.id);
    for (let i = 0; i < 12; i += 1) controller.refundPaymentIntent(paymentIntent.id, { amount: 100 });

    const [last] = await allEvents(stripe, { type: 'charge.refunded' });
    const charge = last?.data.object as unknown as Loose;

    expect(charge.refunds?.data).toHaveLength(10);
    expect(charge.refunds).toMatchObject({ has_more: true, total_count: 12 });
  });

  it('renders an Adaptive Pricing session with presentment_details (basil) or currency_conversion (before)', async () => {
    const { stripe, controller } = await startEmulator({ apiVersion: '2025-01-27.acacia' });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });
    const result = controller.succeedPaymentIntent(paymentIntent.id, { checkout: true, presentment: { currency: 'eur', amount: 920 } });
    controller.configure({ apiVersion: '2025-03-31.basil' });

    const sessionId = result.checkout_session?.id ?? '';
    const [completed] = await allEvents(stripe, { type: 'checkout.session.completed' });
    const basil = await stripe.checkout.sessions.retrieve(sessionId, {}, { apiVersion: '2025-03-31.basil' });

    expect(completed?.data.object).toMatchObject({
      currency: 'eur',
      amount_total: 920,
      currency_conversion: { amount_total: 1000, source_currency: 'usd', fx_rate: '0.92' },
    });
    expect(completed?.data.object).not.toHaveProperty('presentment_details');
    expect(basil).toMatchObject({
      currency: 'usd',
      amount_total: 1000,
      presentment_details: { presentment_amount: 920, presentment_currency: 'eur' },
    });
    expect(result.payment_intent).toMatchObject({ currency: 'eur', amount: 920, amount_received: 920 });
  });
});

describe('stripe emulator: several endpoints', () => {
  it('delivers one event id to two endpoints, each at its version and signed with its secret', async () => {
    const oldReceiver = await startReceiver();
    const newReceiver = await startReceiver();
    const { stripe, controller } = await startEmulator({
      webhookUrl: oldReceiver.url,
      webhookSecret: 'whsec_old',
      webhookApiVersion: OLD,
      endpoints: [{ url: newReceiver.url, secret: 'whsec_new', apiVersion: Stripe.API_VERSION }],
    });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 700, currency: 'usd' });
    controller.succeedPaymentIntent(paymentIntent.id);
    await controller.idle();

    const oldSucceeded = oldReceiver.verified('whsec_old').find((event) => event.type === 'payment_intent.succeeded');
    const newSucceeded = newReceiver.verified('whsec_new').find((event) => event.type === 'payment_intent.succeeded');
    expect(oldSucceeded?.id).toBe(newSucceeded?.id);
    expect(oldSucceeded?.api_version).toBe(OLD);
    expect(newSucceeded?.api_version).toBe(Stripe.API_VERSION);
    expect(oldSucceeded?.data.object).toHaveProperty('charges');
    expect(newSucceeded?.data.object).not.toHaveProperty('charges');
    expect(() => newReceiver.verified('whsec_old')).toThrow(Stripe.errors.StripeSignatureVerificationError);
    expect(controller.stats()).toMatchObject({
      events: { created: 3, undelivered: 0 },
      deliveries: { succeeded: 6 },
      endpoints: { we_0: { succeeded: 3 }, we_1: { succeeded: 3 } },
    });
  });

  it('counts pending_webhooks per endpoint not yet reached', async () => {
    const receiver = await startReceiver();
    const { stripe, controller } = await startEmulator({
      endpoints: [
        { url: receiver.url, secret: 'whsec_a' },
        { url: 'http://127.0.0.1:9/x', secret: 'whsec_b' },
      ],
      dropRate: 1,
    });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    const [event] = await allEvents(stripe);
    expect(event?.pending_webhooks).toBe(2);

    const outcome = await controller.redeliverEvent(event?.id ?? '', 'we_1');

    expect(outcome).toMatchObject({ ok: true, endpoint: 'we_1' });
    expect((await stripe.events.retrieve(event?.id ?? '')).pending_webhooks).toBe(1);
  });
});

describe('stripe emulator: refunds API', () => {
  it('lists refunds newest first with charge filter and pagination, and retrieves one', async () => {
    const { stripe, controller } = await startEmulator();
    const paymentIntent = await stripe.paymentIntents.create({ amount: 3000, currency: 'usd' });
    const other = await stripe.paymentIntents.create({ amount: 3000, currency: 'usd' });
    const charge = controller.succeedPaymentIntent(paymentIntent.id).charge?.id ?? '';
    controller.succeedPaymentIntent(other.id);
    const ids: string[] = [];
    for (let i = 0; i < 12; i += 1) ids.push(controller.refundPaymentIntent(paymentIntent.id, { amount: 100 }).refund?.id ?? '');
    controller.refundPaymentIntent(other.id, { amount: 100 });

    const page = await stripe.refunds.list({ charge, limit: 5 });
    const all: string[] = [];
    for await (const refund of stripe.refunds.list({ charge, limit: 5 })) all.push(refund.id);
    const byPaymentIntent = await stripe.refunds.list({ payment_intent: other.id });

    expect(page).toMatchObject({ object: 'list', url: '/v1/refunds', has_more: true });
    expect(page.data.map((refund) => refund.id)).toEqual([...ids].reverse().slice(0, 5));
    expect(all).toEqual([...ids].reverse());
    expect(byPaymentIntent.data).toHaveLength(1);
    expect(await stripe.refunds.retrieve(ids[0] ?? '')).toMatchObject({ id: ids[0], amount: 100, charge });
    await expect(stripe.refunds.list({ limit: 101 })).rejects.toMatchObject({ statusCode: 400, param: 'limit' });
  });
});

describe('stripe emulator: disputes', () => {
  async function paid() {
    const emulator = await startEmulator();
    const paymentIntent = await emulator.stripe.paymentIntents.create({ amount: 4000, currency: 'usd' });
    emulator.controller.succeedPaymentIntent(paymentIntent.id);
    return { ...emulator, paymentIntent };
  }
  const types = async (stripe: Stripe) => (await allEvents(stripe, { type: 'charge.dispute.*' })).map((event) => event.type).reverse();

  it('withdraws funds, then reinstates them when won', async () => {
    const { stripe, controller, paymentIntent } = await paid();
    const dispute = controller.disputePaymentIntent(paymentIntent.id, { amount: 2500 }).dispute;
    const won = controller.closeDispute(dispute?.id ?? '', { status: 'won' }).dispute;

    expect(dispute?.balance_transactions).toMatchObject([{ amount: -2500, reporting_category: 'dispute' }]);
    expect(won?.balance_transactions).toMatchObject([
      { amount: -2500, reporting_category: 'dispute' },
      { amount: 2500, reporting_category: 'dispute_reversal' },
    ]);
    expect(await types(stripe)).toEqual([
      'charge.dispute.created',
      'charge.dispute.funds_withdrawn',
      'charge.dispute.funds_reinstated',
      'charge.dispute.closed',
    ]);
    expect(await stripe.disputes.retrieve(dispute?.id ?? '')).toMatchObject({ status: 'won' });
  });

  it('runs an inquiry: no money, escalation withdraws; a closed inquiry is warning_closed', async () => {
    const { stripe, controller, paymentIntent, url } = await paid();
    const inquiry = controller.disputePaymentIntent(paymentIntent.id, { inquiry: true }).dispute;
    expect(inquiry).toMatchObject({ status: 'warning_needs_response', balance_transactions: [] });

    const escalation = await fetch(`${url}/_emulator/disputes/${inquiry?.id}/escalate`, { method: 'POST' });
    const escalated = (await escalation.json()) as { dispute: unknown };
    const lost = controller.closeDispute(inquiry?.id ?? '', { status: 'lost' }).dispute;

    expect(escalated.dispute).toMatchObject({ status: 'needs_response', balance_transactions: [{ amount: -4000 }] });
    expect(lost?.balance_transactions).toHaveLength(1);
    expect(await types(stripe)).toEqual([
      'charge.dispute.created',
      'charge.dispute.updated',
      'charge.dispute.funds_withdrawn',
      'charge.dispute.closed',
    ]);

    const second = await paid();
    const other = second.controller.disputePaymentIntent(second.paymentIntent.id, { inquiry: true }).dispute;
    expect(second.controller.closeDispute(other?.id ?? '').dispute?.status).toBe('warning_closed');
    expect(await types(second.stripe)).toEqual(['charge.dispute.created', 'charge.dispute.closed']);
  });

  it('opens a dispute without withdrawal when withdrawFunds is false', async () => {
    const { stripe, controller, paymentIntent } = await paid();
    const dispute = controller.disputePaymentIntent(paymentIntent.id, { withdrawFunds: false }).dispute;
    const won = controller.closeDispute(dispute?.id ?? '', { status: 'won' }).dispute;

    expect(won?.balance_transactions).toEqual([]);
    expect(await types(stripe)).toEqual(['charge.dispute.created', 'charge.dispute.closed']);
  });
});

describe('stripe emulator: PaymentIntents that must not credit', () => {
  it('partially funds a bank transfer and authorizes a manual capture', async () => {
    const { stripe, controller } = await startEmulator();
    const transfer = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });
    const manual = await stripe.paymentIntents.create({ amount: 800, currency: 'usd', capture_method: 'manual' });

    controller.partiallyFundPaymentIntent(transfer.id, { amount: 300 });
    const funded = controller.partiallyFundPaymentIntent(transfer.id, { amount: 200 }).payment_intent;
    const authorized = controller.authorizePaymentIntent(manual.id).payment_intent;

    expect(funded).toMatchObject({
      status: 'requires_action',
      amount_received: 0,
      next_action: { type: 'display_bank_transfer_instructions', display_bank_transfer_instructions: { amount_remaining: 500 } },
    });
    expect(authorized).toMatchObject({ status: 'requires_capture', amount_capturable: 800, amount_received: 0 });
    expect(() => controller.authorizePaymentIntent(transfer.id)).toThrow(/manual/);
    expect(() => controller.partiallyFundPaymentIntent(transfer.id, { amount: 500 })).toThrow(/less than/);
    const types = (await allEvents(stripe)).map((event) => event.type).reverse();
    expect(types.slice(2)).toEqual([
      'payment_intent.partially_funded',
      'payment_intent.partially_funded',
      'payment_intent.amount_capturable_updated',
    ]);
  });
});

describe('stripe emulator: thin v2 events', () => {
  it('delivers a signed thin notification and serves the full event at GET /v2/core/events/:id', async () => {
    const receiver = await startReceiver();
    const { stripe, controller, url } = await startEmulator({
      webhookUrl: receiver.url,
      webhookSecret: 'whsec_thin',
      enabledEvents: ['v2.core.health.*'],
    });

    const response = await fetch(`${url}/_emulator/thin_events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        type: 'v2.core.health.event_generation_failure.resolved',
        data: { impact: { event_type: 'payment_intent.succeeded' } },
      }),
    });
    const created = (await response.json()) as { id: string };
    await controller.idle();

    expect(response.status).toBe(200);
    expect(receiver.deliveries).toHaveLength(1);
    const body = JSON.parse(receiver.deliveries[0]?.raw ?? '{}');
    expect(body).toEqual({
      id: created.id,
      object: 'v2.core.event',
      type: 'v2.core.health.event_generation_failure.resolved',
      livemode: false,
      created: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
      related_object: null,
      context: null,
    });
    const notification = stripe.parseEventNotification(
      receiver.deliveries[0]?.raw ?? '',
      receiver.deliveries[0]?.signature ?? '',
      'whsec_thin',
    );
    const fetched = (await notification.fetchEvent()) as unknown as Record<string, unknown>;
    const retrieved = (await stripe.v2.core.events.retrieve(created.id)) as unknown as Record<string, unknown>;
    expect(fetched).toMatchObject({
      id: created.id,
      data: { impact: { event_type: 'payment_intent.succeeded' }, resolved_at: expect.any(String) },
    });
    expect(retrieved).toMatchObject({ id: created.id, data: { alert_id: expect.any(String), grouping_key: expect.any(String) } });
    await expect(stripe.v2.core.events.retrieve('evt_test_missing')).rejects.toMatchObject({ statusCode: 404 });
  });
});
