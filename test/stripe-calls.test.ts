import { randomUUID } from 'node:crypto';
import { QUEUES, Stripe, createStripeClient, observeStripeCalls, stripeEndpoint, type StripeCall } from '@ledger/shared';
import { closeAll, waitUntil } from '@ledger/testkit';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkerMetrics } from '../apps/order-worker/src/metrics.js';
import { startReconciler } from '../apps/order-worker/src/operations/reconcile-worker.js';
import { buildStripeEmulator, type StripeEmulator } from '../packages/stripe-emulator/src/app.js';
import type { ApiRequestRecord } from '../packages/stripe-emulator/src/faults.js';
import { serviceAuth } from './helpers/auth.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { createWorkerConnection } from '@ledger/shared';
import { startTestSystem, type TestSystem } from './helpers/system.js';
import { startTestWorkers } from './helpers/workers.js';

async function configure(url: string, body: unknown) {
  const response = await fetch(`${url}/_emulator/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(200);
}

async function requestLog(url: string): Promise<ApiRequestRecord[]> {
  return (await fetch(`${url}/_emulator/requests`)).json() as Promise<ApiRequestRecord[]>;
}

async function faultsServed(url: string): Promise<number> {
  const stats = (await (await fetch(`${url}/_emulator/stats`)).json()) as { apiFaults: { served: number } };
  return stats.apiFaults.served;
}

describe('the SDK against injected faults', () => {
  let emulator: StripeEmulator | undefined;
  let url = '';
  let stripe: Stripe;
  let calls: StripeCall[] = [];
  beforeEach(async () => {
    emulator = buildStripeEmulator();
    url = await emulator.app.listen({ port: 0, host: '127.0.0.1' });
    stripe = createStripeClient('sk_test_faults', url);
    calls = [];
    observeStripeCalls(stripe, (call) => calls.push(call));
  });
  afterEach(async () => {
    await emulator?.app.close();
    emulator = undefined;
  });

  it('retries a 503 with the same Idempotency-Key, and counts each attempt by endpoint template', async () => {
    await configure(url, { apiFaults: { status: 503, count: 1, path: '/v1/payment_intents' } });
    const intent = await stripe.paymentIntents.create({ amount: 500, currency: 'usd' });
    const posts = (await requestLog(url)).filter((r) => r.method === 'POST');
    expect(posts.map((r) => [r.status, r.fault])).toEqual([
      [503, true],
      [200, false],
    ]);
    expect(posts[0]?.idempotencyKey).toMatch(/\S/);
    expect(posts[1]?.idempotencyKey).toBe(posts[0]?.idempotencyKey);
    expect(await faultsServed(url)).toBe(1);

    await stripe.paymentIntents.retrieve(intent.id);
    expect(calls.map((call) => [call.method, call.endpoint, call.outcome])).toEqual([
      ['POST', '/v1/payment_intents', 'server_error'],
      ['POST', '/v1/payment_intents', 'ok'],
      ['GET', '/v1/payment_intents/:id', 'ok'],
    ]);
  });

  it('does not retry a 500 with Stripe-Should-Retry: false, nor a bare 429; retries a 429 that says true', async () => {
    await configure(url, { apiFaults: { status: 500, count: 1, shouldRetry: false } });
    await expect(stripe.events.list()).rejects.toBeInstanceOf(Stripe.errors.StripeAPIError);
    await configure(url, { apiFaults: { status: 429, count: 1 } });
    await expect(stripe.events.list()).rejects.toBeInstanceOf(Stripe.errors.StripeRateLimitError);
    await configure(url, { apiFaults: { status: 429, count: 1, shouldRetry: true } });
    await stripe.events.list();
    expect((await requestLog(url)).map((r) => r.status)).toEqual([500, 429, 429, 200]);
    expect(calls.map((call) => call.outcome)).toEqual(['server_error', 'rate_limited', 'rate_limited', 'ok']);
  });

  it('refuses a malformed apiFaults knob', async () => {
    const response = await fetch(`${url}/_emulator/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiFaults: { status: 418, count: 1 } }),
    });
    expect(response.status).toBe(400);
  });

  it('templates ids out of endpoints', () => {
    expect(stripeEndpoint('/v1/payment_intents/pi_3Nx9abc/cancel?expand[]=x')).toBe('/v1/payment_intents/:id/cancel');
    expect(stripeEndpoint('/v1/checkout/sessions/cs_test_a1B2')).toBe('/v1/checkout/sessions/:id');
    expect(stripeEndpoint('/v1/events')).toBe('/v1/events');
  });
});

describe('a sustained 429 slows jobs down instead of failing them', () => {
  let db: TestDatabase | undefined;
  let system: TestSystem | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    const steps = [...cleanups.splice(0).reverse(), () => system?.close(), () => db?.drop()];
    [system, db] = [undefined, undefined];
    await closeAll('closing the 429 test', steps);
  });

  async function orderPaidWithoutWebhooks() {
    system = await startTestSystem(db as TestDatabase, { workers: false });
    const response = await system.receiver.inject({
      method: 'POST',
      url: '/orders',
      headers: { ...serviceAuth(), 'idempotency-key': randomUUID() },
      payload: { accountId: `acct_${randomUUID().slice(0, 8)}`, amount: 700, currency: 'usd' },
    });
    expect(response.statusCode).toBe(201);
    const order = response.json() as { id: string; paymentIntentId: string };
    // Every POST we made carried an Idempotency-Key: the create's is derived from the order.
    const emulatorUrl = `http://127.0.0.1:${(system.emulator.app.server.address() as { port: number }).port}`;
    const posts = (await requestLog(emulatorUrl)).filter((r) => r.method === 'POST');
    expect(posts.length).toBeGreaterThan(0);
    expect(posts.map((r) => r.idempotencyKey)).toEqual(posts.map(() => `pi-create-${order.id}`));
    system.emulator.controller.configure({ webhookUrl: null });
    system.emulator.controller.succeedPaymentIntent(order.paymentIntentId);
    return { order, emulatorUrl };
  }

  const credited = (orderId: string) => async () =>
    (await (db as TestDatabase).prisma.ledgerEntry.count({ where: { orderId, entryType: 'topup' } })) === 1;

  it('a payment sync job completes after the 429s stop, with attempts to spare and no failure', async () => {
    const { order, emulatorUrl } = await orderPaidWithoutWebhooks();
    const running = system as TestSystem;
    const metrics = createWorkerMetrics(new Registry());
    const workers = startTestWorkers({
      prisma: (db as TestDatabase).prisma,
      prefix: running.prefix,
      stripe: running.stripe,
      metrics,
      stripeBackoff: { baseMs: 40, maxMs: 200 },
    });
    cleanups.push(() => workers.close());
    // More 429s than the job has attempts (8): without the back-off it would fail for good.
    await configure(emulatorUrl, { apiFaults: { status: 429, count: 12, path: '/v1/payment_intents' } });
    const confirm = await running.receiver.inject({ method: 'POST', url: `/orders/${order.id}/confirm`, headers: serviceAuth() });
    expect(confirm.statusCode).toBe(202);
    await waitUntil(credited(order.id), 30_000, 'the order to be credited');

    expect(await faultsServed(emulatorUrl)).toBe(12);
    const queue = new Queue(QUEUES.paymentSync, { connection: { url: TEST_REDIS_URL }, prefix: running.prefix });
    cleanups.push(() => queue.close());
    expect(await queue.getFailedCount()).toBe(0);
    const [job] = await queue.getCompleted();
    expect(job?.attemptsMade ?? 0).toBeLessThan(8);
    expect((await metrics.stripeRateLimited.get()).values.reduce((sum, v) => sum + v.value, 0)).toBe(12);
  });

  it('a reconciliation pass completes after the 429s stop, with no failed pass', async () => {
    const { order, emulatorUrl } = await orderPaidWithoutWebhooks();
    const running = system as TestSystem;
    const workers = startTestWorkers({ prisma: (db as TestDatabase).prisma, prefix: running.prefix, stripe: running.stripe });
    cleanups.push(() => workers.close());
    await configure(emulatorUrl, { apiFaults: { status: 429, count: 4, path: '/v1/events' } });
    const connection = createWorkerConnection(TEST_REDIS_URL);
    cleanups.push(() => connection.quit());
    const metrics = createWorkerMetrics(new Registry());
    const reconciler = await startReconciler({
      prisma: (db as TestDatabase).prisma,
      stripe: running.stripe,
      connection,
      prefix: running.prefix,
      metrics,
      logger: pino({ level: 'silent' }),
      intervalSeconds: 3600,
      holdExpirySeconds: 0,
      inboxRetentionDays: 35,
      stripeBackoff: { baseMs: 40, maxMs: 200 },
      options: { staleAfterSeconds: 3600, maxRequestsPerSecond: 100, jobBackoffMs: 5 },
    });
    cleanups.push(() => reconciler.close());
    await waitUntil(credited(order.id), 30_000, 'the order to be credited by reconciliation');

    expect(await faultsServed(emulatorUrl)).toBe(4);
    const queue = new Queue(QUEUES.reconcile, { connection: { url: TEST_REDIS_URL }, prefix: running.prefix });
    cleanups.push(() => queue.close());
    expect(await queue.getFailedCount()).toBe(0);
    const age = (await metrics.reconcileCheckpointAge.get()).values[0]?.value;
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(3600);
  });
});

describe('Stripe client environment', () => {
  it('pins the SDK version by default and refuses a malformed STRIPE_API_VERSION or a warn horizon of 30 days', async () => {
    const { loadWorkerEnv } = await import('../apps/order-worker/src/env.js');
    const { loadReceiverEnv } = await import('../apps/webhook-receiver/src/env.js');
    expect(loadWorkerEnv({}).STRIPE_API_VERSION).toBe(Stripe.API_VERSION);
    expect(loadWorkerEnv({ STRIPE_API_VERSION: '2024-06-20' }).STRIPE_API_VERSION).toBe('2024-06-20');
    expect(() => loadWorkerEnv({ STRIPE_API_VERSION: 'latest' })).toThrow(/STRIPE_API_VERSION must be a Stripe API version/);
    expect(() => loadReceiverEnv({ STRIPE_API_VERSION: '2024-6-20' })).toThrow(/STRIPE_API_VERSION/);
    expect(() => loadWorkerEnv({ RECONCILE_CHECKPOINT_WARN_DAYS: '30' })).toThrow(/RECONCILE_CHECKPOINT_WARN_DAYS must be below 30/);
    expect(() => loadWorkerEnv({ STRIPE_MAX_NETWORK_RETRIES: '-1' })).toThrow(/STRIPE_MAX_NETWORK_RETRIES/);
  });

  it('sends STRIPE_API_VERSION as Stripe-Version', async () => {
    const emulator = buildStripeEmulator();
    try {
      const url = await emulator.app.listen({ port: 0, host: '127.0.0.1' });
      let version: string | undefined;
      const stripe = createStripeClient('sk_test_version', { apiBase: url, apiVersion: '2024-06-20' });
      stripe.on('request', (event: Stripe.RequestEvent) => {
        version = event.api_version;
      });
      await stripe.events.list();
      expect(version).toBe('2024-06-20');
    } finally {
      await emulator.app.close();
    }
  });
});
