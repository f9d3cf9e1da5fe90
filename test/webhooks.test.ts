import { QUEUES } from '@ledger/shared';
import { UnrecoverableError, Worker, type Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { events, type OrderFixture } from './helpers/fixtures.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { waitUntil } from '@ledger/testkit';
import { testQueue } from './helpers/queues.js';
import { buildTestReceiver, signatureHeader, WEBHOOK_SECRETS } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';
import { tcpProxy } from './helpers/tcp-proxy.js';

let db: TestDatabase;
let app: FastifyInstance;
let queue: Queue;
const prefix = uniquePrefix();

const order: OrderFixture = {
  id: 'ord_webhooktest00000000000',
  accountId: 'acct_w',
  amount: 500,
  currency: 'usd',
  paymentIntentId: 'pi_webhooktest0001',
};

beforeAll(async () => {
  db = await createTestDatabase();
  app = await buildTestReceiver({ databaseUrl: db.url, prefix });
  queue = testQueue(prefix, QUEUES.stripeEvents);
});
afterAll(async () => {
  await app?.close();
  await queue?.close();
  await deleteKeysWithPrefix(prefix);
  await db?.drop();
});

function deliver(payload: string, headers: Record<string, string> = { 'stripe-signature': signatureHeader(payload) }, receiver = app) {
  return receiver.inject({
    method: 'POST',
    url: '/webhooks/stripe',
    payload,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  });
}

const newEvent = () => events.paymentIntent('succeeded', order);

describe('POST /webhooks/stripe', () => {
  it('queues a verified event under its own id, without its client secret', async () => {
    const stripeEvent = newEvent();
    const response = await deliver(JSON.stringify(stripeEvent));
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ received: true });
    const job = await queue.getJob(stripeEvent.id);
    expect(job?.data).toMatchObject({ id: stripeEvent.id, type: 'payment_intent.succeeded', object: { id: order.paymentIntentId } });
    expect(JSON.stringify(job?.data)).not.toContain('secret');
  });

  it('answers a repeat with duplicate:true and keeps one job', async () => {
    const payload = JSON.stringify(newEvent());
    expect((await deliver(payload)).json()).toEqual({ received: true });
    const again = await deliver(payload);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ received: true, duplicate: true });
  });

  it('turns 50 concurrent deliveries of one event into exactly one job', async () => {
    const stripeEvent = newEvent();
    const payload = JSON.stringify(stripeEvent);
    const before = await queue.count();
    const responses = await Promise.all(Array.from({ length: 50 }, () => deliver(payload)));
    expect(responses.every((response) => response.statusCode === 200)).toBe(true);
    expect(responses.filter((response) => !response.json().duplicate)).toHaveLength(1);
    expect((await queue.count()) - before).toBe(1);
  });

  it('accepts a signature made with any configured secret (rotation)', async () => {
    const payload = JSON.stringify(newEvent());
    const response = await deliver(payload, { 'stripe-signature': signatureHeader(payload, WEBHOOK_SECRETS[1]) });
    expect(response.statusCode).toBe(200);
  });

  it('accepts a header carrying two v1 signatures when one matches', async () => {
    const payload = JSON.stringify(newEvent());
    const timestamp = Math.floor(Date.now() / 1000);
    const valid = signatureHeader(payload, WEBHOOK_SECRETS[0], timestamp);
    const other = signatureHeader(payload, 'whsec_unknown_secret', timestamp).split('v1=')[1];
    const response = await deliver(payload, { 'stripe-signature': `t=${timestamp},v1=${other},${valid.split(',')[1]}` });
    expect(response.statusCode).toBe(200);
  });

  it('judges a header with several t= values by the one the signature was made with', async () => {
    const payload = JSON.stringify(newEvent());
    const timestamp = Math.floor(Date.now() / 1000);
    const response = await deliver(payload, {
      'stripe-signature': `t=${timestamp - 7_200},${signatureHeader(payload, WEBHOOK_SECRETS[0], timestamp)}`,
    });
    expect(response.statusCode).toBe(200);
  });

  it('acknowledges, never queues, events of another mode or of a connected account it does not serve', async () => {
    const live = { ...newEvent(), livemode: true };
    const connected = { ...newEvent(), account: 'acct_1SomeoneElse' };
    for (const stripeEvent of [live, connected]) {
      const response = await deliver(JSON.stringify(stripeEvent));
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ received: true, ignored: true });
      expect(await queue.getJob(stripeEvent.id)).toBeUndefined();
    }
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('ledger_webhooks_not_ours_total{reason="live_event_in_test_mode"} 1');
    expect(metrics).toContain('ledger_webhooks_not_ours_total{reason="connected_account"} 1');
  });

  it('runs an event again when Stripe resends it after its job failed for good', async () => {
    const stripeEvent = newEvent();
    const payload = JSON.stringify(stripeEvent);
    expect((await deliver(payload)).json()).toEqual({ received: true });
    // The job fails for good (as after its last retry).
    const failing = new Worker(
      QUEUES.stripeEvents,
      async () => {
        throw new UnrecoverableError('PostgreSQL was down for longer than the retries lasted');
      },
      { connection: { url: TEST_REDIS_URL }, prefix },
    );
    try {
      await waitUntil(async () => (await queue.getJobState(stripeEvent.id)) === 'failed', 10_000, 'the job to fail');
    } finally {
      await failing.close();
    }
    const resent = await deliver(payload);
    expect(resent.statusCode).toBe(200);
    expect(resent.json()).toEqual({ received: true, duplicate: true, requeued: true });
    expect(await queue.getJobState(stripeEvent.id)).toBe('waiting');
    expect((await queue.getJob(stripeEvent.id))?.attemptsMade).toBe(0);
  });

  it('acknowledges event types the worker does not handle without queueing them', async () => {
    const stripeEvent = { ...newEvent(), type: 'customer.created' };
    const response = await deliver(JSON.stringify(stripeEvent));
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ received: true, ignored: true });
    expect(await queue.getJob(stripeEvent.id)).toBeUndefined();
  });

  describe('rejects bad input with 400 and queues nothing', () => {
    const now = () => Math.floor(Date.now() / 1000);
    const cases: [string, () => { payload: string; headers?: Record<string, string> }, string][] = [
      ['a missing signature header', () => ({ payload: JSON.stringify(newEvent()), headers: {} }), 'missing_signature'],
      [
        'a signature made with an unknown secret',
        () => {
          const payload = JSON.stringify(newEvent());
          return { payload, headers: { 'stripe-signature': signatureHeader(payload, 'whsec_attacker') } };
        },
        'invalid_signature',
      ],
      [
        'a body changed after signing',
        () => {
          const payload = JSON.stringify(newEvent());
          return { payload: payload.replace('"amount":500', '"amount":50000'), headers: { 'stripe-signature': signatureHeader(payload) } };
        },
        'invalid_signature',
      ],
      [
        'a garbled header',
        () => ({ payload: JSON.stringify(newEvent()), headers: { 'stripe-signature': 'nonsense' } }),
        'invalid_signature',
      ],
      [
        'a stale timestamp',
        () => {
          const payload = JSON.stringify(newEvent());
          return { payload, headers: { 'stripe-signature': signatureHeader(payload, undefined, now() - 301) } };
        },
        'timestamp_out_of_tolerance',
      ],
      [
        'a timestamp from the future',
        () => {
          const payload = JSON.stringify(newEvent());
          return { payload, headers: { 'stripe-signature': signatureHeader(payload, undefined, now() + 600) } };
        },
        'timestamp_out_of_tolerance',
      ],
      [
        'a current timestamp in front of the future one the signature was made with',
        () => {
          // The SDK verifies against the last t= of the header: that is the time to judge.
          const payload = JSON.stringify(newEvent());
          const future = signatureHeader(payload, undefined, now() + 3_600);
          return { payload, headers: { 'stripe-signature': `t=${now()},${future}` } };
        },
        'timestamp_out_of_tolerance',
      ],
      [
        'a signed event nested thousands of levels deep',
        () => {
          const stripeEvent = newEvent();
          const deep = `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`;
          const payload = JSON.stringify({ ...stripeEvent, data: { object: { ...stripeEvent.data.object, nested: '__deep__' } } }).replace(
            '"__deep__"',
            deep,
          );
          return { payload };
        },
        'not_an_event',
      ],
      ['a signed body that is not JSON', () => ({ payload: '{"id": "evt_1", trunc' }), 'invalid_json'],
      ['signed JSON that is not an event', () => ({ payload: JSON.stringify({ hello: 'world' }) }), 'not_an_event'],
      ['an event without data.object', () => ({ payload: JSON.stringify({ ...newEvent(), data: {} }) }), 'not_an_event'],
    ];
    it.each(cases)('%s', async (_name, make, code) => {
      const before = await queue.count();
      const { payload, headers } = make();
      const response = await deliver(payload, headers ?? { 'stripe-signature': signatureHeader(payload) });
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: code, message: expect.any(String) });
      expect(await queue.count()).toBe(before);
    });
  });

  it('answers 415 with a JSON error for a body that is not declared JSON', async () => {
    const stripeEvent = newEvent();
    const payload = JSON.stringify(stripeEvent);
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const response = await deliver(payload, { 'content-type': contentType, 'stripe-signature': signatureHeader(payload) });
      expect(response.statusCode).toBe(415);
      expect(response.json()).toMatchObject({ error: 'unsupported_media_type' });
    }
    expect(await queue.getJob(stripeEvent.id)).toBeUndefined();
  });

  it('answers 413 with a JSON error for a body over the limit', async () => {
    const stripeEvent = { ...newEvent(), padding: 'x'.repeat(70 * 1024) };
    const payload = JSON.stringify(stripeEvent);
    const response = await deliver(payload);
    expect(response.statusCode).toBe(413);
    expect(response.json()).toMatchObject({ error: 'payload_too_large' });
    expect(await queue.getJob(stripeEvent.id)).toBeUndefined();
  });
});

describe('thin events (Event Destinations, https://docs.stripe.com/api/v2/core/events)', () => {
  const thin = (type: string, extra: Record<string, unknown> = {}) => ({
    id: `evt_test_${Math.random().toString(36).slice(2, 14)}`,
    object: 'v2.core.event',
    type,
    livemode: false,
    created: new Date().toISOString(),
    context: null,
    related_object: null,
    ...extra,
  });
  const metric = async (type: string) => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = text.split('\n').find((row) => row.startsWith(`ledger_webhooks_thin_total{type="${type}"}`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  it('verifies and acknowledges any thin event, counts it, and queues no Stripe event job', async () => {
    const before = await queue.count();
    const counted = await metric('v2.core.account.updated');
    const body = thin('v2.core.account.updated', {
      related_object: { id: 'acct_1', type: 'v2.core.account', url: '/v2/core/accounts/acct_1' },
    });
    const response = await deliver(JSON.stringify(body));
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ received: true, thin: true, ignored: true });
    expect(await metric('v2.core.account.updated')).toBe(counted + 1);
    expect(await queue.count()).toBe(before);
    // Unsigned, it is refused like any other delivery.
    expect((await deliver(JSON.stringify(body), { 'stripe-signature': 't=1,v1=00' })).statusCode).toBe(400);
  });

  it('an event generation failure, resolved, queues one recovery job however often it arrives', async () => {
    const recovery = testQueue(prefix, QUEUES.eventRecovery);
    try {
      const body = thin('v2.core.health.event_generation_failure.resolved');
      const payload = JSON.stringify(body);
      expect((await deliver(payload)).json()).toEqual({ received: true, thin: true });
      expect((await deliver(payload)).json()).toEqual({ received: true, thin: true, duplicate: true });
      const job = await recovery.getJob(body.id);
      expect(job?.name).toBe('event-generation-failure');
      expect(job?.data).toEqual({ eventId: body.id, created: Math.floor(Date.parse(body.created) / 1000) });
    } finally {
      await recovery.close();
    }
  });

  it('a thin event about a PaymentIntent queues a sync of it; another mode is acknowledged and ignored', async () => {
    const sync = testQueue(prefix, QUEUES.paymentSync);
    try {
      const paymentIntentId = `pi_thin${Math.random().toString(36).slice(2, 12)}`;
      const about = { id: paymentIntentId, type: 'payment_intent', url: `/v1/payment_intents/${paymentIntentId}` };
      expect((await deliver(JSON.stringify(thin('v1.payment_intent.succeeded', { related_object: about })))).json()).toEqual({
        received: true,
        thin: true,
      });
      const jobs = await sync.getJobs(['waiting', 'delayed', 'prioritized']);
      expect(jobs.filter((job) => job.data.paymentIntentId === paymentIntentId)).toHaveLength(1);
      const live = thin('v1.payment_intent.succeeded', { livemode: true, related_object: { ...about, id: `${paymentIntentId}x` } });
      expect((await deliver(JSON.stringify(live))).json()).toEqual({ received: true, thin: true, ignored: true });
      const after = await sync.getJobs(['waiting', 'delayed', 'prioritized']);
      expect(after.filter((job) => job.data.paymentIntentId === `${paymentIntentId}x`)).toHaveLength(0);
    } finally {
      await sync.close();
    }
  });
});

describe('when Redis goes away', () => {
  it('answers 503 within about a second, and takes the retry once Redis is back', async () => {
    // The receiver reaches the suite's Redis through a proxy the test cuts: the Redis this test
    // looks into is the one the receiver was writing to a moment before.
    const proxy = await tcpProxy(TEST_REDIS_URL, 6379);
    const redisUrl = new URL(TEST_REDIS_URL);
    redisUrl.host = `127.0.0.1:${proxy.port}`;
    const flaky = await buildTestReceiver({ databaseUrl: db.url, prefix, redisUrl: redisUrl.toString() });
    try {
      const reached = newEvent();
      expect((await deliver(JSON.stringify(reached), undefined, flaky)).statusCode).toBe(200);
      expect(await queue.getJob(reached.id)).toBeDefined();

      proxy.cut();
      const stripeEvent = newEvent();
      const payload = JSON.stringify(stripeEvent);
      const started = Date.now();
      const response = await deliver(payload, undefined, flaky);
      expect(response.statusCode).toBe(503);
      expect(response.json()).toMatchObject({ error: 'queue_unavailable', message: expect.any(String) });
      expect(Date.now() - started).toBeLessThan(2_000);
      expect((await flaky.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);

      // Stripe retries the delivery it was refused; once Redis is back it is acknowledged and queued.
      // (The refused attempt's add may itself land after the reconnect — ioredis resends a command
      // the cut left unanswered — and then the retry is answered as a duplicate: one job either way.)
      proxy.restore();
      await waitUntil(
        async () => (await flaky.inject({ method: 'GET', url: '/readyz' })).statusCode === 200,
        15_000,
        'the receiver to reach Redis again',
      );
      const retried = await deliver(payload, undefined, flaky);
      expect(retried.statusCode).toBe(200);
      expect(retried.json()).toMatchObject({ received: true });
      expect((await queue.getJob(stripeEvent.id))?.data).toMatchObject({ id: stripeEvent.id });
    } finally {
      await flaky.close();
      await proxy.close();
    }
  });
});
