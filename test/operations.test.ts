import { randomUUID } from 'node:crypto';
import { createLogger, QUEUES } from '@ledger/shared';
import { Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkerMetrics } from '../apps/order-worker/src/metrics.js';
import { processStripeEvent } from '../apps/order-worker/src/jobs/stripe-event.js';
import { JWT_SECRET, ORDERS_API_KEYS, serviceAuth, userToken } from './helpers/auth.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { captureLogs } from './helpers/logs.js';
import { createOrderFixture, events, jobOf } from './helpers/fixtures.js';
import { closeAll, waitUntil } from '@ledger/testkit';
import { testQueue } from './helpers/queues.js';
import { ADMIN_TOKEN, buildTestReceiver, signatureHeader, WEBHOOK_SECRETS } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';
import { startTestSystem, EMULATOR_KEY, type TestSystem } from './helpers/system.js';

let db: TestDatabase;
let system: TestSystem;
let app: FastifyInstance;
const receiverLogs = captureLogs();

beforeAll(async () => {
  db = await createTestDatabase();
  system = await startTestSystem(db);
  // A second app on the same database and queues whose every log line (trace level) we keep.
  app = await buildTestReceiver({
    databaseUrl: db.url,
    prefix: system.prefix,
    stripe: system.stripe,
    logger: createLogger('webhook-receiver', 'trace', receiverLogs.stream),
  });
});
afterAll(async () => {
  await app?.close();
  await system?.close();
  await db?.drop();
});

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('admin routes and Bull Board', () => {
  it('answer 401 without admin credentials, with a JSON error', async () => {
    for (const url of ['/admin/queues', '/admin/queues/api/queues', '/accounts/acct_x', '/accounts/acct_x/ledger']) {
      for (const headers of [
        {},
        { authorization: 'Bearer wrong-token-0000000000' },
        { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` },
      ]) {
        const response = await app.inject({ method: 'GET', url, headers });
        expect(response.statusCode, `${url} ${JSON.stringify(headers)}`).toBe(401);
        expect(response.json()).toMatchObject({ error: 'unauthorized' });
      }
    }
  });

  it('serve Bull Board with every queue to a bearer token or a basic-auth password', async () => {
    const page = await app.inject({ method: 'GET', url: '/admin/queues', headers: admin });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    const basic = { authorization: `Basic ${Buffer.from(`ops:${ADMIN_TOKEN}`).toString('base64')}` };
    const queues = await app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: basic });
    expect(queues.statusCode).toBe(200);
    expect(
      queues
        .json()
        .queues.map((queue: { name: string }) => queue.name)
        .sort(),
    ).toEqual(['payment-sync', 'reconcile', 'reviews', 'stripe-events']);
  });

  it('show a balance and its ledger, oldest first', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 900 });
    const metrics = createWorkerMetrics(new Registry());
    const silent = createLogger('test', 'silent');
    await processStripeEvent({ prisma: db.prisma, metrics }, jobOf(events.paymentIntent('succeeded', order)), silent);
    await processStripeEvent(
      { prisma: db.prisma, metrics },
      jobOf(events.refund('refund.created', order, { id: 're_ops1', amount: 100 })),
      silent,
    );
    const account = await app.inject({ method: 'GET', url: `/accounts/${order.accountId}`, headers: admin });
    expect(account.json()).toMatchObject({ id: order.accountId, currency: 'usd', balance: 800 });
    const ledger = await app.inject({ method: 'GET', url: `/accounts/${order.accountId}/ledger`, headers: admin });
    expect(
      ledger.json().map((entry: { type: string; amount: number; reference: string }) => [entry.type, entry.amount, entry.reference]),
    ).toEqual([
      ['topup', 900, order.paymentIntentId],
      ['refund', -100, 're_ops1'],
    ]);
    expect((await app.inject({ method: 'GET', url: '/accounts/acct_none', headers: admin })).statusCode).toBe(404);
  });

  it('ask a browser for a login (Basic challenge), since credentials in the URL are not sent', async () => {
    const response = await app.inject({ method: 'GET', url: '/admin/queues' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^Basic realm="[^"]+"/);
  });

  it('keep admin and orders credentials apart: an orders key or user token opens no admin route, the admin token no orders route', async () => {
    const token = await userToken('acct_admin_probe');
    for (const authorization of [
      ...ORDERS_API_KEYS.map((key) => `Bearer ${key}`),
      `Bearer ${token}`,
      `Basic ${Buffer.from(`ops:${ORDERS_API_KEYS[0]}`).toString('base64')}`,
    ]) {
      for (const url of ['/admin/queues', '/admin/queues/api/queues', '/accounts/acct_admin_probe']) {
        expect(
          (await app.inject({ method: 'GET', url, headers: { authorization } })).statusCode,
          `${url} ${authorization.slice(0, 12)}`,
        ).toBe(401);
      }
    }
    const asAdmin = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { ...admin, 'idempotency-key': randomUUID() },
      payload: { accountId: 'acct_admin_probe', amount: 100, currency: 'usd' },
    });
    expect(asAdmin.statusCode).toBe(401);
    expect(asAdmin.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(await db.prisma.order.count({ where: { accountId: 'acct_admin_probe' } })).toBe(0);
  });
});

describe('Bull Board actions', () => {
  // A queue of its own with one failed job, and two boards on it: the default and BULL_BOARD_WRITE=true.
  const prefix = uniquePrefix();
  const retryFailed = `/admin/queues/api/queues/${QUEUES.paymentSync}/retry/failed`;
  let readOnly: FastifyInstance;
  let writable: FastifyInstance;

  beforeAll(async () => {
    readOnly = await buildTestReceiver({ databaseUrl: db.url, prefix });
    writable = await buildTestReceiver({ databaseUrl: db.url, prefix, bullBoardWrite: true });
    const queue = testQueue(prefix, QUEUES.paymentSync);
    const worker = new Worker(QUEUES.paymentSync, async () => Promise.reject(new Error('failed on purpose')), {
      connection: { url: TEST_REDIS_URL },
      prefix,
    });
    try {
      await queue.add('confirm', { paymentIntentId: 'pi_board', reason: 'confirm' }, { jobId: 'board-job', attempts: 1 });
      await waitUntil(async () => (await queue.getJobCounts('failed')).failed === 1, 10_000, 'the job to fail');
    } finally {
      await worker.close();
      await queue.close();
    }
  });
  afterAll(async () => {
    await closeAll('after the queue board tests', [() => readOnly?.close(), () => writable?.close(), () => deleteKeysWithPrefix(prefix)]);
  });

  const failedCount = async () => {
    const queue = testQueue(prefix, QUEUES.paymentSync);
    try {
      return (await queue.getJobCounts('failed')).failed;
    } finally {
      await queue.close();
    }
  };

  it('are refused by default (read-only): retry, clean, pause, add, remove', async () => {
    const writes = [
      ['PUT', retryFailed],
      ['PUT', `/admin/queues/api/queues/${QUEUES.paymentSync}/clean/failed`],
      ['PUT', `/admin/queues/api/queues/${QUEUES.paymentSync}/pause`],
      ['PUT', `/admin/queues/api/queues/${QUEUES.paymentSync}/board-job/retry`],
      ['PUT', `/admin/queues/api/queues/${QUEUES.paymentSync}/board-job/clean`],
      ['POST', `/admin/queues/api/queues/${QUEUES.paymentSync}/add`],
    ] as const;
    for (const [method, url] of writes) {
      const response = await readOnly.inject({
        method,
        url,
        headers: admin,
        payload: method === 'POST' ? { name: 'x', data: {} } : undefined,
      });
      expect(response.statusCode, url).toBe(405);
    }
    expect(await failedCount()).toBe(1);
    const board = (await readOnly.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: admin })).json();
    expect(board.queues.every((queue: { readOnlyMode: boolean }) => queue.readOnlyMode)).toBe(true);
  });

  it('are allowed with BULL_BOARD_WRITE=true, still only for admins', async () => {
    expect((await writable.inject({ method: 'PUT', url: retryFailed, headers: serviceAuth() })).statusCode).toBe(401);
    const response = await writable.inject({ method: 'PUT', url: retryFailed, headers: admin });
    expect(response.statusCode).toBe(200);
    expect(await failedCount()).toBe(0);
  });
});

describe('health, metrics and docs', () => {
  it('report liveness and readiness', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ checks: { postgres: 'ok', redis: 'ok' } });
  });

  it('count webhooks by outcome and show queue depth in Prometheus format', async () => {
    const order = await createOrderFixture(db.prisma);
    const payload = JSON.stringify(events.paymentIntent('succeeded', order));
    const send = (headers: Record<string, string>) =>
      app.inject({ method: 'POST', url: '/webhooks/stripe', payload, headers: { 'content-type': 'application/json', ...headers } });
    await send({ 'stripe-signature': signatureHeader(payload) });
    await send({ 'stripe-signature': signatureHeader(payload) });
    await send({ 'stripe-signature': signatureHeader(payload, 'whsec_wrong') });
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toContain('text/plain');
    const value = (name: string) => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)`, 'm').exec(metrics.body)?.[1]);
    expect(value('ledger_webhooks_received_total')).toBe(3);
    expect(value('ledger_webhooks_verified_total')).toBe(2);
    expect(value('ledger_webhooks_duplicate_total')).toBe(1);
    expect(value('ledger_webhooks_rejected_total{reason="invalid_signature"}')).toBe(1);
    expect(metrics.body).toMatch(/^ledger_queue_jobs\{queue="stripe-events",state="\w+"\} \d+/m);
  });

  it('serve the OpenAPI document of the public routes at /docs', async () => {
    const ui = await app.inject({ method: 'GET', url: '/docs' });
    expect([200, 302]).toContain(ui.statusCode);
    const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining(['/webhooks/stripe', '/orders', '/orders/{id}', '/orders/{id}/confirm']),
    );
    expect(spec.paths['/orders'].post.requestBody.content['application/json'].schema.required).toEqual(['amount', 'currency']);
    expect(Object.keys(spec.components.securitySchemes)).toEqual(expect.arrayContaining(['admin', 'serviceKey', 'userJwt']));
    expect(spec.paths['/orders'].post.responses).toHaveProperty('429');
    expect(spec.paths['/orders/{id}'].get.parameters.map((parameter: { name: string }) => parameter.name)).toEqual(
      expect.arrayContaining(['wait', 'status']),
    );
  });
});

describe('logs', () => {
  it('never contain a secret: signature, webhook secret, admin token, client secret, API key, JWT', async () => {
    // Traffic that carries every kind of secret: an order (client secret) made with a service key,
    // reads with the rotated-out key and a user's JWT, refused keys and tokens, a signed webhook
    // with a client secret in its object, admin calls, and the worker applying the event.
    const created = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { ...serviceAuth(), 'idempotency-key': randomUUID() },
      payload: { accountId: 'acct_logs', amount: 500, currency: 'usd' },
    });
    const order = created.json();
    const jwt = await userToken('acct_logs');
    const expiredJwt = await userToken('acct_logs', {}, { expiresIn: -60 });
    const forgedJwt = await userToken('acct_logs', {}, { secret: `${JWT_SECRET}-forged` });
    const wrongKey = `${ORDERS_API_KEYS[0]}-wrong`;
    expect((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: serviceAuth(ORDERS_API_KEYS[1]) })).statusCode).toBe(
      200,
    );
    expect(
      (
        await app.inject({
          method: 'GET',
          url: `/orders/${order.id}?wait=0.2&status=awaiting_payment`,
          headers: { authorization: `Bearer ${jwt}` },
        })
      ).statusCode,
    ).toBe(200);
    for (const refused of [expiredJwt, forgedJwt, wrongKey]) {
      expect(
        (await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: { authorization: `Bearer ${refused}` } })).statusCode,
      ).toBe(401);
    }
    expect(
      (await app.inject({ method: 'POST', url: `/orders/${order.id}/confirm`, headers: { authorization: `Bearer ${jwt}` } })).statusCode,
    ).toBe(202);
    expect(order.clientSecret).toContain('_secret_');
    const stripeEvent = events.paymentIntent('succeeded', { ...order, paymentIntentId: order.paymentIntentId });
    const payload = JSON.stringify(stripeEvent);
    const signature = signatureHeader(payload);
    await app.inject({
      method: 'POST',
      url: '/webhooks/stripe',
      payload,
      headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    });
    await app.inject({
      method: 'POST',
      url: '/webhooks/stripe',
      payload: `${payload} `,
      headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    });
    await app.inject({ method: 'GET', url: '/accounts/acct_logs', headers: admin });
    await app.inject({ method: 'GET', url: '/accounts/acct_logs', headers: { authorization: `Bearer ${ADMIN_TOKEN}x` } });
    // Objects a future log line might carry by mistake: the environment, a request's headers, a token.
    const careless = createLogger('webhook-receiver', 'info', receiverLogs.stream);
    careless.info(
      { env: { ORDERS_API_KEYS: ORDERS_API_KEYS.join(','), ORDERS_JWT_SECRET: JWT_SECRET }, ORDERS_API_KEYS: ORDERS_API_KEYS.join(',') },
      'environment',
    );
    careless.info(
      { request: { headers: { authorization: `Bearer ${jwt}` } }, token: jwt, authorization: `Bearer ${ORDERS_API_KEYS[1]}` },
      'request',
    );
    const workerLogs = captureLogs();
    await processStripeEvent(
      { prisma: db.prisma, metrics: createWorkerMetrics(new Registry()) },
      jobOf(stripeEvent),
      createLogger('order-worker', 'trace', workerLogs.stream),
    );

    const all = [...receiverLogs.lines, ...workerLogs.lines].join('\n');
    expect(receiverLogs.lines.length).toBeGreaterThan(10);
    expect(all).toContain(order.id); // the logs do say what happened
    const signatureValue = signature.split('v1=')[1]!;
    const jwtParts = [jwt, expiredJwt, forgedJwt].flatMap((token) => token.split('.').slice(1)); // payloads and signatures
    for (const secret of [
      signatureValue,
      ...WEBHOOK_SECRETS,
      ADMIN_TOKEN,
      order.clientSecret,
      stripeEvent.data.object.client_secret as string,
      EMULATOR_KEY,
      ...ORDERS_API_KEYS,
      wrongKey,
      JWT_SECRET,
      ...jwtParts,
    ]) {
      expect(all).not.toContain(secret);
    }
  });
});
