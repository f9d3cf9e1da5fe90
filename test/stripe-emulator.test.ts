import Fastify from 'fastify';
import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { EMULATOR_API_KEY, useEmulatorApps } from './helpers/emulator.js';

// The emulator is driven the way the system drives Stripe: through the real stripe SDK, and by
// receiving its webhooks on a real HTTP server that verifies them with the SDK.

const SECRET = 'whsec_test_secret';
const API_KEY = EMULATOR_API_KEY;

const { startEmulator, track } = useEmulatorApps({ webhookSecret: SECRET });

interface Delivery {
  raw: string;
  signature: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A webhook endpoint keeping the raw body of each delivery; `status` picks each answer. */
async function startReceiver(status: (delivery: Delivery, index: number) => number = () => 200) {
  const deliveries: Delivery[] = [];
  const app = Fastify();
  track(app);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.post<{ Body: string }>('/webhooks', async (request, reply) => {
    const delivery = { raw: request.body, signature: String(request.headers['stripe-signature']), headers: request.headers };
    deliveries.push(delivery);
    return reply.code(status(delivery, deliveries.length - 1)).send({ received: true });
  });
  const url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/webhooks`;
  const verified = (secret = SECRET): Stripe.Event[] =>
    deliveries.map((delivery) => Stripe.webhooks.constructEvent(delivery.raw, delivery.signature, secret));
  return { url, deliveries, verified };
}

async function allEvents(stripe: Stripe, params: Stripe.EventListParams = {}): Promise<Stripe.Event[]> {
  const events: Stripe.Event[] = [];
  for await (const event of stripe.events.list({ limit: 100, ...params })) events.push(event);
  return events;
}

const timestampOf = (signature: string): number => Number(/t=(\d+)/.exec(signature)?.[1]);

describe('stripe emulator: PaymentIntents API through the stripe SDK', () => {
  it('creates a PaymentIntent shaped like Stripe’s and records payment_intent.created', async () => {
    const { stripe } = await startEmulator();
    const before = Math.floor(Date.now() / 1000);

    const paymentIntent = await stripe.paymentIntents.create(
      { amount: 1099, currency: 'EUR', metadata: { order_id: 'ord_1', account_id: 'acc_1' }, automatic_payment_methods: { enabled: true } },
      { idempotencyKey: 'order-ord_1' },
    );

    expect(paymentIntent).toMatchObject({
      object: 'payment_intent',
      amount: 1099,
      amount_received: 0,
      currency: 'eur',
      status: 'requires_payment_method',
      livemode: false,
      latest_charge: null,
      metadata: { order_id: 'ord_1', account_id: 'acc_1' },
      payment_method_types: ['card'],
      automatic_payment_methods: { enabled: true },
    });
    expect(paymentIntent.id).toMatch(/^pi_\w{24}$/);
    expect(paymentIntent.client_secret).toMatch(new RegExp(`^${paymentIntent.id}_secret_\\w+$`));
    expect(paymentIntent.created).toBeGreaterThanOrEqual(before);
    expect(paymentIntent.lastResponse.requestId).toMatch(/^req_/);

    const [created] = await allEvents(stripe);
    expect(created).toMatchObject({
      object: 'event',
      type: 'payment_intent.created',
      api_version: Stripe.API_VERSION,
      livemode: false,
      pending_webhooks: 0,
      request: { id: paymentIntent.lastResponse.requestId, idempotency_key: 'order-ord_1' },
      data: { object: { id: paymentIntent.id } },
    });
  });

  it('replays a create with the same Idempotency-Key and parameters, as first answered', async () => {
    const { stripe, controller } = await startEmulator();
    const params = { amount: 500, currency: 'usd', metadata: { order_id: 'ord_2' } };

    const first = await stripe.paymentIntents.create(params, { idempotencyKey: 'key-2' });
    controller.succeedPaymentIntent(first.id);
    const replay = await stripe.paymentIntents.create(params, { idempotencyKey: 'key-2' });

    expect(replay.id).toBe(first.id);
    expect(replay.client_secret).toBe(first.client_secret);
    // Stripe replays the saved response, not the object's current state.
    expect(replay.status).toBe('requires_payment_method');
    expect(replay.lastResponse.headers['idempotent-replayed']).toBe('true');
    expect(replay.lastResponse.headers['original-request']).toBe(first.lastResponse.requestId);
    expect(first.lastResponse.headers['idempotent-replayed']).toBeUndefined();
    expect(await allEvents(stripe, { type: 'payment_intent.created' })).toHaveLength(1);
  });

  it('refuses the same Idempotency-Key with other parameters (StripeIdempotencyError)', async () => {
    const { stripe } = await startEmulator();
    await stripe.paymentIntents.create({ amount: 500, currency: 'usd' }, { idempotencyKey: 'key-3' });

    const reuse = stripe.paymentIntents.create({ amount: 501, currency: 'usd' }, { idempotencyKey: 'key-3' });

    await expect(reuse).rejects.toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    await expect(reuse).rejects.toMatchObject({ statusCode: 400, message: expect.stringContaining('same parameters') });
  });

  it('scopes idempotency keys per API key', async () => {
    const { stripe, url } = await startEmulator();
    const other = new Stripe('sk_test_other', { host: '127.0.0.1', port: new URL(url).port, protocol: 'http' });

    const mine = await stripe.paymentIntents.create({ amount: 500, currency: 'usd' }, { idempotencyKey: 'shared' });
    const theirs = await other.paymentIntents.create({ amount: 900, currency: 'usd' }, { idempotencyKey: 'shared' });

    expect(theirs.id).not.toBe(mine.id);
  });

  it('creates exactly one PaymentIntent for 20 concurrent requests with one key', async () => {
    const { stripe } = await startEmulator();

    const results = await Promise.all(
      Array.from({ length: 20 }, () => stripe.paymentIntents.create({ amount: 700, currency: 'usd' }, { idempotencyKey: 'concurrent' })),
    );

    expect(new Set(results.map((paymentIntent) => paymentIntent.id)).size).toBe(1);
    expect(results.filter((paymentIntent) => paymentIntent.lastResponse.headers['idempotent-replayed'] === 'true')).toHaveLength(19);
    expect(await allEvents(stripe, { type: 'payment_intent.created' })).toHaveLength(1);
  });

  it('does not keep a request that failed validation, so its key can be used again', async () => {
    const { stripe } = await startEmulator();

    const invalid = stripe.paymentIntents.create({ amount: -5, currency: 'usd' }, { idempotencyKey: 'retry-me' });
    await expect(invalid).rejects.toMatchObject({ type: 'StripeInvalidRequestError', statusCode: 400, param: 'amount' });

    const valid = await stripe.paymentIntents.create({ amount: 5, currency: 'usd' }, { idempotencyKey: 'retry-me' });
    expect(valid.amount).toBe(5);
  });

  it('answers validation errors in Stripe’s shape, naming the parameter', async () => {
    const { stripe } = await startEmulator();

    await expect(stripe.paymentIntents.create({ currency: 'usd' } as Stripe.PaymentIntentCreateParams)).rejects.toMatchObject({
      statusCode: 400,
      code: 'parameter_missing',
      param: 'amount',
      message: 'Missing required param: amount.',
    });
    await expect(stripe.paymentIntents.create({ amount: 100, currency: 'usd', confirm: true })).rejects.toMatchObject({
      code: 'parameter_unknown',
      param: 'confirm',
    });
    await expect(stripe.paymentIntents.create({ amount: 100, currency: 'dollars' })).rejects.toMatchObject({ param: 'currency' });
  });

  it('retrieves a PaymentIntent with its charge, and 404s unknown ids', async () => {
    const { stripe, controller } = await startEmulator();
    const created = await stripe.paymentIntents.create({ amount: 1200, currency: 'usd' });
    controller.succeedPaymentIntent(created.id);

    const retrieved = await stripe.paymentIntents.retrieve(created.id);

    expect(retrieved).toMatchObject({ status: 'succeeded', amount_received: 1200, latest_charge: expect.stringMatching(/^ch_/) });
    await expect(stripe.paymentIntents.retrieve('pi_missing')).rejects.toMatchObject({
      type: 'StripeInvalidRequestError',
      statusCode: 404,
      code: 'resource_missing',
    });
  });

  it('requires a secret key on every /v1 request, and sends a Request-Id on every response', async () => {
    const { url } = await startEmulator();

    const anonymous = await fetch(`${url}/v1/events`);
    const publishable = await fetch(`${url}/v1/events`, { headers: { Authorization: 'Bearer pk_test_123' } });
    const basic = await fetch(`${url}/v1/events`, {
      headers: { Authorization: `Basic ${Buffer.from(`${API_KEY}:`).toString('base64')}` },
    });

    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.any(String) } });
    expect(anonymous.headers.get('request-id')).toMatch(/^req_/);
    expect(publishable.status).toBe(401);
    expect(basic.status).toBe(200);
  });
});

describe('stripe emulator: GET /v1/events', () => {
  it('pages newest first, with starting_after and auto-pagination', async () => {
    const { stripe } = await startEmulator();
    const created: string[] = [];
    for (let i = 0; i < 25; i += 1) created.push((await stripe.paymentIntents.create({ amount: 100 + i, currency: 'usd' })).id);

    const firstPage = await stripe.events.list({ limit: 10 });
    const all = await allEvents(stripe, { limit: 7 });

    expect(firstPage).toMatchObject({ object: 'list', url: '/v1/events', has_more: true });
    expect(firstPage.data).toHaveLength(10);
    expect(all.map((event) => (event.data.object as Stripe.PaymentIntent).id)).toEqual([...created].reverse());
    const oldest = await stripe.events.list({ limit: 10, starting_after: all[19]?.id ?? '' });
    expect(oldest).toMatchObject({ has_more: false });
    expect(oldest.data.map((event) => event.id)).toEqual(all.slice(20).map((event) => event.id));
  });

  it('filters by type (with wildcards), types[], created and delivery_success', async () => {
    const receiver = await startReceiver();
    const { stripe, controller } = await startEmulator({ webhookUrl: receiver.url, enabledEvents: ['payment_intent.*'] });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    controller.succeedPaymentIntent(paymentIntent.id);
    await controller.idle();

    const types = async (params: Stripe.EventListParams) => (await allEvents(stripe, params)).map((event) => event.type).sort();

    expect(await types({ type: 'payment_intent.*' })).toEqual(['payment_intent.created', 'payment_intent.succeeded']);
    expect(await types({ type: 'charge.succeeded' })).toEqual(['charge.succeeded']);
    expect(await types({ types: ['charge.succeeded', 'payment_intent.created'] })).toEqual(['charge.succeeded', 'payment_intent.created']);
    const now = Math.floor(Date.now() / 1000);
    expect(await types({ created: { gte: now - 60 } })).toHaveLength(3);
    expect(await types({ created: { gt: now + 60 } })).toEqual([]);
    // Only payment_intent.* go to the endpoint; an event never sent is not waiting for delivery.
    expect(await types({ delivery_success: true })).toHaveLength(3);
    expect(await types({ delivery_success: false })).toEqual([]);
    await expect(stripe.events.list({ starting_after: 'evt_unknown' })).rejects.toMatchObject({ code: 'resource_missing' });
  });
});

describe('stripe emulator: webhook delivery', () => {
  it('delivers each event signed, verifiable with stripe.webhooks.constructEvent', async () => {
    const receiver = await startReceiver();
    const { stripe, controller } = await startEmulator({ webhookUrl: receiver.url });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 2500, currency: 'usd', metadata: { order_id: 'o_9' } });

    const result = controller.succeedPaymentIntent(paymentIntent.id);
    await controller.idle();

    const events = receiver.verified();
    expect(events.map((event) => event.type).sort()).toEqual(['charge.succeeded', 'payment_intent.created', 'payment_intent.succeeded']);
    expect(result.events).toHaveLength(2);
    const succeeded = events.find((event) => event.type === 'payment_intent.succeeded');
    expect(succeeded?.data.object).toMatchObject({
      id: paymentIntent.id,
      status: 'succeeded',
      amount_received: 2500,
      metadata: { order_id: 'o_9' },
    });
    expect(receiver.deliveries[0]?.headers).toMatchObject({
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
    });
    expect(() =>
      Stripe.webhooks.constructEvent(receiver.deliveries[0]?.raw ?? '', receiver.deliveries[0]?.signature ?? '', 'whsec_wrong'),
    ).toThrow(Stripe.errors.StripeSignatureVerificationError);
    expect(await allEvents(stripe, { delivery_success: false })).toEqual([]);
    expect(controller.stats()).toMatchObject({
      events: { created: 3, undelivered: 0 },
      deliveries: { attempted: 3, succeeded: 3, failed: 0, pending: 0, inFlight: 0 },
    });
  });

  it('signs with every secret while a secret rolls', async () => {
    const receiver = await startReceiver();
    const { stripe, controller } = await startEmulator({ webhookUrl: receiver.url, webhookSecret: ['whsec_old', 'whsec_new'] });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await controller.idle();

    expect(receiver.deliveries[0]?.signature.match(/v1=/g)).toHaveLength(2);
    expect(receiver.verified('whsec_old')).toHaveLength(1);
    expect(receiver.verified('whsec_new')).toHaveLength(1);
  });

  it('retries after a 500 with a fresh signature timestamp until a 2xx', async () => {
    const receiver = await startReceiver((_delivery, index) => (index === 0 ? 500 : 200));
    // A retry more than a second later gets a later `t=`, as Stripe's do.
    const { stripe, controller } = await startEmulator({ webhookUrl: receiver.url, retry: { attempts: 3, baseDelayMs: 1100 } });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });

    expect(await allEvents(stripe, { delivery_success: false })).toHaveLength(1);
    await controller.idle();

    const [failed, retried] = receiver.deliveries;
    expect(receiver.deliveries).toHaveLength(2);
    expect(timestampOf(retried?.signature ?? '')).toBeGreaterThan(timestampOf(failed?.signature ?? ''));
    expect(receiver.verified().map((event) => (event.data.object as Stripe.PaymentIntent).id)).toEqual([
      paymentIntent.id,
      paymentIntent.id,
    ]);
    expect(await allEvents(stripe, { delivery_success: true })).toHaveLength(1);
    expect(controller.stats().deliveries).toMatchObject({ attempted: 2, succeeded: 1, failed: 1 });
  });

  it('gives up after the configured attempts and leaves the event undelivered', async () => {
    const receiver = await startReceiver(() => 503);
    const { stripe, controller } = await startEmulator({ webhookUrl: receiver.url, retry: { attempts: 3, baseDelayMs: 10 } });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await controller.idle();

    expect(receiver.deliveries).toHaveLength(3);
    expect(controller.stats()).toMatchObject({ events: { undelivered: 1 }, deliveries: { failed: 3, exhausted: 1 } });
    expect(await allEvents(stripe, { delivery_success: false })).toHaveLength(1);
  });

  it('duplicates deliveries with duplicateRate', async () => {
    const receiver = await startReceiver();
    const { stripe, controller } = await startEmulator({ webhookUrl: receiver.url, duplicateRate: 1, seed: 7 });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    controller.succeedPaymentIntent(paymentIntent.id);
    await controller.idle();

    const counts = new Map<string, number>();
    for (const event of receiver.verified()) counts.set(event.id, (counts.get(event.id) ?? 0) + 1);
    expect(counts.size).toBe(3);
    for (const count of counts.values()) expect(count).toBeGreaterThanOrEqual(2);
    expect(controller.stats().events.duplicated).toBe(3);
  });

  it('drops everything with dropRate 1: events listed as undelivered, resend delivers one', async () => {
    const receiver = await startReceiver();
    const { stripe, controller, url } = await startEmulator({ webhookUrl: receiver.url, dropRate: 1 });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    controller.succeedPaymentIntent(paymentIntent.id);
    await controller.idle();

    expect(receiver.deliveries).toHaveLength(0);
    const undelivered = await allEvents(stripe, { delivery_success: false });
    expect(undelivered).toHaveLength(3);
    expect(undelivered.every((event) => event.pending_webhooks === 1)).toBe(true);
    expect(controller.stats().events).toMatchObject({ created: 3, undelivered: 3, dropped: 3 });

    const succeeded = undelivered.find((event) => event.type === 'payment_intent.succeeded');
    const resend = await fetch(`${url}/_emulator/events/${succeeded?.id}/deliver`, { method: 'POST' });

    expect(await resend.json()).toMatchObject({ eventId: succeeded?.id, ok: true, status: 200 });
    expect(receiver.verified().map((event) => event.id)).toEqual([succeeded?.id]);
    expect(await allEvents(stripe, { delivery_success: false })).toHaveLength(2);
  });

  it('makes the same chaos decisions for the same seed', async () => {
    const dropped = async () => {
      const { stripe, controller } = await startEmulator({ webhookUrl: 'http://127.0.0.1:9/unused', dropRate: 0.5, seed: 42 });
      for (let i = 0; i < 20; i += 1) await stripe.paymentIntents.create({ amount: 100 + i, currency: 'usd' });
      const pattern = (await allEvents(stripe)).map((event) => (event.pending_webhooks === 1 ? 'sent' : 'dropped'));
      return { pattern, dropped: controller.stats().events.dropped };
    };
    const first = await dropped();
    const second = await dropped();

    expect(second.pattern).toEqual(first.pattern);
    expect(first.dropped).toBeGreaterThan(0);
    expect(first.dropped).toBeLessThan(20);
  });

  it('changes knobs at runtime through POST /_emulator/config and reports stats', async () => {
    const receiver = await startReceiver();
    const { stripe, controller, url } = await startEmulator();
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });

    const configured = await fetch(`${url}/_emulator/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ webhookUrl: receiver.url, reorder: true, concurrency: 2, delayMs: [0, 20], retry: { attempts: 2 } }),
    });
    const invalid = await fetch(`${url}/_emulator/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dropRate: 2 }),
    });
    const paymentIntent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    controller.succeedPaymentIntent(paymentIntent.id, { checkout: true });
    await controller.idle();

    expect(await configured.json()).toMatchObject({ webhookUrl: receiver.url, reorder: true, retry: { attempts: 2, baseDelayMs: 100 } });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringContaining('dropRate') } });
    // The first PaymentIntent's event came before there was an endpoint: listed, never sent.
    expect(receiver.verified()).toHaveLength(4);
    const stats = await (await fetch(`${url}/_emulator/stats`)).json();
    expect(stats).toMatchObject({ events: { created: 5, undelivered: 0 }, deliveries: { attempted: 4, succeeded: 4, pending: 0 } });
  });

  it('aborts an attempt after timeoutMs and counts it as failed', async () => {
    const hanging = Fastify();
    track(hanging);
    hanging.post('/webhooks', () => new Promise(() => {}));
    const hangingUrl = `${await hanging.listen({ port: 0, host: '127.0.0.1' })}/webhooks`;
    const { stripe, controller } = await startEmulator({ webhookUrl: hangingUrl, timeoutMs: 100, dropRate: 1 });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    const [event] = await allEvents(stripe);

    const outcome = await controller.redeliverEvent(event?.id ?? '');

    expect(outcome).toMatchObject({ ok: false, status: null, error: expect.stringContaining('timed out') });
    expect(controller.stats().deliveries).toMatchObject({ attempted: 1, failed: 1, inFlight: 0 });
    hanging.server.closeAllConnections();
  });

  it('closes promptly while a delivery hangs', async () => {
    const hanging = Fastify();
    track(hanging);
    let onReceived = () => {};
    const received = new Promise<void>((resolve) => (onReceived = resolve));
    hanging.post('/webhooks', () => {
      onReceived();
      return new Promise(() => {});
    });
    const hangingUrl = `${await hanging.listen({ port: 0, host: '127.0.0.1' })}/webhooks`;
    const { stripe, controller, app } = await startEmulator({ webhookUrl: hangingUrl, timeoutMs: 60_000 });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    // The delivery reached the endpoint and hangs there: close has one to abort.
    await received;
    expect(controller.stats().deliveries.inFlight).toBe(1);

    const started = Date.now();
    await app.close();

    expect(Date.now() - started).toBeLessThan(1000);
    await controller.idle();
    // The hanging server has a request open that will never be answered; drop its sockets.
    hanging.server.closeAllConnections();
  });
});

describe('stripe emulator: payment flows', () => {
  async function paidPaymentIntent(amount = 10_000) {
    const receiver = await startReceiver();
    const emulator = await startEmulator({ webhookUrl: receiver.url, enabledEvents: ['charge.*', 'refund.*', 'checkout.*'] });
    const paymentIntent = await emulator.stripe.paymentIntents.create({ amount, currency: 'usd', metadata: { order_id: 'o_7' } });
    return { ...emulator, receiver, paymentIntent };
  }

  it('refunds partially twice, then refuses to refund more than is left', async () => {
    const { stripe, controller, receiver, paymentIntent, url } = await paidPaymentIntent();
    controller.succeedPaymentIntent(paymentIntent.id);

    const first = controller.refundPaymentIntent(paymentIntent.id, { amount: 3000 });
    const second = controller.refundPaymentIntent(paymentIntent.id, { amount: 2000 });
    const tooMuch = await fetch(`${url}/_emulator/payment_intents/${paymentIntent.id}/refund`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 5001 }),
    });
    const rest = controller.refundPaymentIntent(paymentIntent.id);
    await controller.idle();

    expect(first.refund).toMatchObject({ object: 'refund', amount: 3000, status: 'succeeded', payment_intent: paymentIntent.id });
    expect(second.charge).toMatchObject({ amount_refunded: 5000, refunded: false });
    expect(tooMuch.status).toBe(400);
    expect(await tooMuch.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'amount' } });
    expect(rest.refund?.amount).toBe(5000);
    expect(rest.charge).toMatchObject({ amount_refunded: 10_000, refunded: true });
    expect(() => controller.refundPaymentIntent(paymentIntent.id, { amount: 1 })).toThrow(/already been refunded/);

    // Deliveries may arrive in any order (as from Stripe); the API lists them in the order they happened.
    const events = (await allEvents(stripe, { types: ['refund.created', 'charge.refunded'] })).reverse();
    const delivered = receiver.verified().filter((event) => event.type === 'refund.created' || event.type === 'charge.refunded');
    expect(delivered.map((event) => event.id).sort()).toEqual(events.map((event) => event.id).sort());
    expect(events.filter((event) => event.type === 'refund.created').map((event) => (event.data.object as Stripe.Refund).amount)).toEqual([
      3000, 2000, 5000,
    ]);
    const refundedCharges = events
      .filter((event): event is Stripe.ChargeRefundedEvent => event.type === 'charge.refunded')
      .map((event) => event.data.object);
    // Since 2022-11-15 a charge no longer embeds its refunds (test/stripe-emulator-versions.test.ts has the old shape).
    expect(refundedCharges.map((charge) => [charge.amount_refunded, 'refunds' in charge, charge.refunded])).toEqual([
      [3000, false, false],
      [5000, false, false],
      [10_000, false, true],
    ]);
    expect(first.events).toHaveLength(2);
  });

  it('opens and closes a dispute, and refuses refunds on a disputed charge', async () => {
    const { controller, receiver, paymentIntent } = await paidPaymentIntent(4000);
    const { charge } = controller.succeedPaymentIntent(paymentIntent.id);

    const opened = controller.disputePaymentIntent(paymentIntent.id, { reason: 'fraudulent' });
    const dispute = opened.dispute;
    expect(dispute).toMatchObject({
      object: 'dispute',
      amount: 4000,
      currency: 'usd',
      charge: charge?.id,
      payment_intent: paymentIntent.id,
      status: 'needs_response',
    });
    expect(() => controller.refundPaymentIntent(paymentIntent.id)).toThrow(/charged back/);
    const closed = controller.closeDispute(dispute?.id ?? '', { status: 'lost' });
    expect(() => controller.closeDispute(dispute?.id ?? '', { status: 'won' })).toThrow(/already closed/);
    await controller.idle();

    expect(closed.dispute?.status).toBe('lost');
    const disputeEvents = receiver.verified().filter((event) => event.type.startsWith('charge.dispute.'));
    expect(disputeEvents.map((event) => [event.type, (event.data.object as Stripe.Dispute).status])).toEqual([
      ['charge.dispute.created', 'needs_response'],
      ['charge.dispute.funds_withdrawn', 'needs_response'],
      ['charge.dispute.closed', 'lost'],
    ]);
    expect(disputeEvents[2]?.data.previous_attributes).toEqual({ status: 'needs_response' });
  });

  it('completes a Checkout Session and can report a payment that does not match', async () => {
    const { controller, receiver, paymentIntent, url } = await paidPaymentIntent(1500);

    const response = await fetch(`${url}/_emulator/payment_intents/${paymentIntent.id}/succeed`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount_received: 1400, currency: 'EUR', checkout: true }),
    });
    const result = await response.json();
    await controller.idle();

    expect(result).toMatchObject({
      payment_intent: { status: 'succeeded', amount: 1500, amount_received: 1400, currency: 'eur' },
      charge: { amount: 1400, currency: 'eur' },
      checkout_session: { payment_intent: paymentIntent.id, payment_status: 'paid', metadata: { order_id: 'o_7' } },
      events: expect.arrayContaining([expect.stringMatching(/^evt_/)]),
    });
    const session = receiver.verified().find((event) => event.type === 'checkout.session.completed');
    expect(session?.data.object).toMatchObject({ object: 'checkout.session', id: expect.stringMatching(/^cs_test_/), status: 'complete' });
  });

  it('fails, marks processing and cancels, refusing moves Stripe would refuse', async () => {
    const { stripe, controller } = await startEmulator();
    const declined = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    const canceled = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });

    controller.markPaymentIntentProcessing(declined.id);
    const failure = controller.failPaymentIntent(declined.id, { decline_code: 'insufficient_funds' });
    controller.cancelPaymentIntent(canceled.id, { cancellation_reason: 'abandoned' });

    expect(failure.payment_intent).toMatchObject({
      status: 'requires_payment_method',
      last_payment_error: { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds' },
    });
    expect(await stripe.paymentIntents.retrieve(canceled.id)).toMatchObject({ status: 'canceled', cancellation_reason: 'abandoned' });
    expect(() => controller.succeedPaymentIntent(canceled.id)).toThrow(/status of canceled/);
    expect(() => controller.succeedPaymentIntent('pi_missing')).toThrow(/No such payment_intent/);
    expect(() => controller.refundPaymentIntent(declined.id)).toThrow(/no successful charge/);
    expect((await allEvents(stripe)).map((event) => event.type).reverse()).toEqual([
      'payment_intent.created',
      'payment_intent.created',
      'payment_intent.processing',
      'payment_intent.payment_failed',
      'payment_intent.canceled',
    ]);
  });
});
