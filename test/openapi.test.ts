import { randomUUID } from 'node:crypto';
import { createStripeClient } from '@ledger/shared';
import { Ajv } from 'ajv';
import ajvFormats from 'ajv-formats';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceAuth, userAuth } from './helpers/auth.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { events } from './helpers/fixtures.js';
import { waitUntil } from '@ledger/testkit';
import { ADMIN_TOKEN, buildTestReceiver, signatureHeader } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';
import { startTestSystem, type TestSystem } from './helpers/system.js';

/**
 * The OpenAPI document is made from the routes' own schemas; this drives every documented
 * operation through the statuses it really answers and checks each answer against what the
 * document says for that status. A status the document does not list fails, and so does a
 * documented operation no test here drives (a new route must come with its cases).
 */

interface Operation {
  tags?: string[];
  operationId?: string;
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: object;
}

let db: TestDatabase;
let system: TestSystem;
let app: FastifyInstance;
let spec: Document;
const ajv = new Ajv({ strict: false, allErrors: true });
ajvFormats.default(ajv);
/** `METHOD /path/{param} status` of every answer checked. */
const checked = new Set<string>();

const service = serviceAuth();
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const account = () => `acct_${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  db = await createTestDatabase();
  system = await startTestSystem(db);
  app = system.receiver;
  const docs = await app.inject({ method: 'GET', url: '/docs/json' });
  expect(docs.statusCode).toBe(200);
  spec = docs.json();
});
afterAll(async () => {
  await system?.close();
  await db?.drop();
});

/** The fields a schema requires, through `allOf` and references to components. */
function requiredFields(schema: { required?: string[]; allOf?: object[]; $ref?: string }): string[] {
  if (schema.$ref) return requiredFields((spec.components as { schemas: Record<string, object> }).schemas[schema.$ref.split('/').pop()!]!);
  return [...(schema.required ?? []), ...(schema.allOf ?? []).flatMap((part) => requiredFields(part))];
}

/** Checks one answer against the document: its status is listed, and its body fits that status' schema. */
function conforms(method: string, path: string, response: LightMyRequestResponse, expectedStatus: number) {
  expect(response.statusCode, `${method} ${path}: ${response.body}`).toBe(expectedStatus);
  const operation = spec.paths[path]?.[method.toLowerCase()];
  expect(operation, `${method} ${path} is documented`).toBeDefined();
  const documented = operation!.responses[String(response.statusCode)];
  expect(documented, `${method} ${path} documents ${response.statusCode}`).toBeDefined();
  const [mediaType, media] = Object.entries(documented!.content ?? {})[0] ?? [];
  expect(media, `${method} ${path} ${response.statusCode} has a schema`).toBeDefined();
  expect(response.headers['content-type']).toContain(mediaType === 'text/plain' ? 'text/plain' : 'application/json');
  const body = mediaType === 'application/json' ? response.json() : response.body;
  const validate = ajv.compile({ ...media!.schema, components: spec.components });
  expect(validate(body) ? [] : validate.errors, `${method} ${path} ${response.statusCode}: ${response.body}`).toEqual([]);
  checked.add(`${method} ${path} ${response.statusCode}`);
}

async function createOrder(
  body: object,
  key: string | null = randomUUID(),
  target = app,
  headers: Record<string, string> = { ...service },
) {
  return target.inject({
    method: 'POST',
    url: '/orders',
    headers: key === null ? headers : { ...headers, 'idempotency-key': key },
    payload: body,
  });
}

describe('the OpenAPI document', () => {
  it('gives every operation tags, a unique operationId and an error schema for every failure', () => {
    const operations = Object.entries(spec.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ path, method, operation })),
    );
    expect(operations.map(({ method, path }) => `${method.toUpperCase()} ${path}`).sort()).toEqual(
      [
        'GET /accounts/{id}',
        'GET /accounts/{id}/balance',
        'GET /accounts/{id}/ledger',
        'GET /holds/{id}',
        'POST /accounts/{id}/debits',
        'POST /accounts/{id}/holds',
        'POST /holds/{id}/capture',
        'POST /holds/{id}/release',
        'GET /admin/reviews',
        'GET /admin/reviews/{orderId}',
        'GET /healthz',
        'GET /metrics',
        'GET /orders/{id}',
        'GET /readyz',
        'POST /admin/reviews/{orderId}/resolve',
        'POST /orders',
        'POST /orders/{id}/confirm',
        'POST /webhooks/stripe',
      ].sort(),
    );
    for (const { operation } of operations) {
      expect(operation.tags?.length).toBeGreaterThan(0);
      expect(operation.operationId).toMatch(/^[a-z][A-Za-z]+$/);
      for (const [status, response] of Object.entries(operation.responses)) {
        if (Number(status) < 400) continue;
        const schema = response.content?.['application/json']?.schema;
        expect(schema && requiredFields(schema), `${operation.operationId} ${status}`).toEqual(
          expect.arrayContaining(['error', 'message']),
        );
      }
    }
    expect(new Set(operations.map(({ operation }) => operation.operationId)).size).toBe(operations.length);
  });

  it('documents what the webhook route reads, though only the handler checks it (after the signature)', () => {
    const webhook = spec.paths['/webhooks/stripe']!.post as Operation & {
      parameters: { name: string; in: string }[];
      requestBody: { content: Record<string, { schema: { required: string[] } }> };
    };
    expect(webhook.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'stripe-signature', in: 'header' })]));
    expect(webhook.requestBody.content['application/json']!.schema.required).toEqual(
      expect.arrayContaining(['id', 'object', 'type', 'data']),
    );
  });
});

describe('every route answers what its document says', () => {
  it('health, readiness, metrics', async () => {
    conforms('GET', '/healthz', await app.inject({ method: 'GET', url: '/healthz' }), 200);
    // Ready once its connections are up (a fresh process answers 503 until then).
    await waitUntil(
      async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200,
      10_000,
      'the receiver to be ready',
    );
    conforms('GET', '/readyz', await app.inject({ method: 'GET', url: '/readyz' }), 200);
    conforms('GET', '/metrics', await app.inject({ method: 'GET', url: '/metrics' }), 200);
  });

  it('POST /webhooks/stripe: accepted, duplicate, ignored, refused', async () => {
    const deliver = (payload: string, headers: Record<string, string>) =>
      app.inject({
        method: 'POST',
        url: '/webhooks/stripe',
        payload,
        headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
      });
    const signed = (payload: string) => deliver(payload, { 'stripe-signature': signatureHeader(payload) });
    const order = {
      id: `ord_${randomUUID().replaceAll('-', '')}`,
      accountId: account(),
      amount: 500,
      currency: 'usd',
      paymentIntentId: `pi_${randomUUID().replaceAll('-', '')}`,
    };
    const payload = JSON.stringify(events.paymentIntent('succeeded', order));

    const accepted = await signed(payload);
    conforms('POST', '/webhooks/stripe', accepted, 200);
    expect(accepted.json()).toEqual({ received: true });
    const duplicate = await signed(payload);
    conforms('POST', '/webhooks/stripe', duplicate, 200);
    expect(duplicate.json()).toEqual({ received: true, duplicate: true });
    const unhandled = JSON.stringify({ ...JSON.parse(payload), id: `evt_${randomUUID().replaceAll('-', '')}`, type: 'customer.created' });
    const ignored = await signed(unhandled);
    conforms('POST', '/webhooks/stripe', ignored, 200);
    expect(ignored.json()).toEqual({ received: true, ignored: true });

    conforms('POST', '/webhooks/stripe', await deliver(payload, {}), 400);
    conforms('POST', '/webhooks/stripe', await deliver(payload, { 'stripe-signature': signatureHeader(payload, 'whsec_wrong') }), 400);
    conforms('POST', '/webhooks/stripe', await signed(JSON.stringify({ hello: 'world' })), 400);
    const oversized = JSON.stringify({ padding: 'x'.repeat(64 * 1024) });
    conforms('POST', '/webhooks/stripe', await signed(oversized), 413);
    const plain = await app.inject({
      method: 'POST',
      url: '/webhooks/stripe',
      payload,
      headers: { 'content-type': 'text/plain', 'stripe-signature': signatureHeader(payload) },
    });
    conforms('POST', '/webhooks/stripe', plain, 415);
  });

  it('POST /orders, GET /orders/:id, POST /orders/:id/confirm', async () => {
    const accountId = account();
    const body = { accountId, amount: 1_250, currency: 'usd' };
    const key = randomUUID();
    const created = await createOrder(body, key);
    conforms('POST', '/orders', created, 201);
    const order = created.json();
    conforms('POST', '/orders', await createOrder(body, key), 200);
    conforms('POST', '/orders', await createOrder({ ...body, amount: 2 }, key), 409);
    conforms('POST', '/orders', await createOrder({ ...body, amount: -1 }), 400);
    conforms('POST', '/orders', await createOrder(body, null), 400);
    conforms('POST', '/orders', await createOrder(body, randomUUID(), app, {}), 401);
    conforms('POST', '/orders', await createOrder(body, randomUUID(), app, await userAuth(account())), 403);
    const padded = await createOrder({ ...body, padding: 'x'.repeat(64 * 1024) });
    conforms('POST', '/orders', padded, 413);
    const xml = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { ...service, 'idempotency-key': randomUUID(), 'content-type': 'application/xml' },
      payload: '<order/>',
    });
    conforms('POST', '/orders', xml, 415);

    conforms('GET', '/orders/{id}', await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: service }), 200);
    conforms(
      'GET',
      '/orders/{id}',
      await app.inject({ method: 'GET', url: `/orders/${order.id}?wait=0.05&status=awaiting_payment`, headers: service }),
      200,
    );
    conforms(
      'GET',
      '/orders/{id}',
      await app.inject({ method: 'GET', url: `/orders/${order.id}?wait=99&status=awaiting_payment`, headers: service }),
      400,
    );
    conforms('GET', '/orders/{id}', await app.inject({ method: 'GET', url: `/orders/${order.id}` }), 401);
    conforms('GET', '/orders/{id}', await app.inject({ method: 'GET', url: '/orders/ord_unknown', headers: service }), 404);

    conforms(
      'POST',
      '/orders/{id}/confirm',
      await app.inject({ method: 'POST', url: `/orders/${order.id}/confirm`, headers: service }),
      202,
    );
    conforms('POST', '/orders/{id}/confirm', await app.inject({ method: 'POST', url: `/orders/${order.id}/confirm` }), 401);
    conforms(
      'POST',
      '/orders/{id}/confirm',
      await app.inject({ method: 'POST', url: '/orders/ord_unknown/confirm', headers: service }),
      404,
    );
  });

  it('the orders routes when Stripe is down and over the rate limit', async () => {
    const prefix = uniquePrefix();
    const limited = await buildTestReceiver({
      databaseUrl: db.url,
      prefix,
      stripe: createStripeClient('sk_test_x', 'http://127.0.0.1:9'),
      rateLimits: { windowSeconds: 60, perAccount: 1_000, perIp: 1 },
    });
    try {
      const accountId = account();
      conforms('POST', '/orders', await createOrder({ accountId, amount: 300, currency: 'usd' }, randomUUID(), limited), 503);
      // The order Stripe never made a PaymentIntent for: a confirm has nothing to ask Stripe about.
      const unpaid = await db.prisma.order.findFirstOrThrow({ where: { accountId } });
      conforms(
        'POST',
        '/orders/{id}/confirm',
        await app.inject({ method: 'POST', url: `/orders/${unpaid.id}/confirm`, headers: service }),
        409,
      );

      // Callers without a service key count per address, refused credentials included. Until the
      // limiter's Redis connection is up, it lets requests through (401); then the limit holds.
      for (const [path, url] of [
        ['/orders', '/orders'],
        ['/orders/{id}/confirm', `/orders/${unpaid.id}/confirm`],
      ] as const) {
        await waitUntil(
          async () => {
            const response = await limited.inject({ method: 'POST', url, payload: { accountId, amount: 300, currency: 'usd' } });
            conforms('POST', path, response, response.statusCode === 429 ? 429 : 401);
            return response.statusCode === 429;
          },
          10_000,
          `${path} to be rate limited`,
        );
      }
    } finally {
      await limited.close();
      await deleteKeysWithPrefix(prefix);
    }
  });

  it('GET /accounts/:id and its ledger', async () => {
    const accountId = account();
    const order = (await createOrder({ accountId, amount: 700, currency: 'eur' })).json();
    system.emulator.controller.succeedPaymentIntent(order.paymentIntentId);
    await waitUntil(async () => (await db.prisma.ledgerEntry.count({ where: { accountId } })) === 1, 20_000, 'the payment to be credited');

    const shown = await app.inject({ method: 'GET', url: `/accounts/${accountId}`, headers: admin });
    conforms('GET', '/accounts/{id}', shown, 200);
    expect(shown.json()).toMatchObject({ id: accountId, currency: 'eur', balance: 700 });
    conforms('GET', '/accounts/{id}', await app.inject({ method: 'GET', url: '/accounts/acct_nobody', headers: admin }), 404);
    conforms('GET', '/accounts/{id}', await app.inject({ method: 'GET', url: `/accounts/${accountId}` }), 401);

    const ledger = await app.inject({ method: 'GET', url: `/accounts/${accountId}/ledger`, headers: admin });
    conforms('GET', '/accounts/{id}/ledger', ledger, 200);
    expect(ledger.json()).toMatchObject([
      { type: 'topup', amount: 700, currency: 'eur', reference: order.paymentIntentId, orderId: order.id },
    ]);
    conforms('GET', '/accounts/{id}/ledger', await app.inject({ method: 'GET', url: '/accounts/acct_nobody/ledger', headers: admin }), 404);
    conforms('GET', '/accounts/{id}/ledger', await app.inject({ method: 'GET', url: `/accounts/${accountId}/ledger` }), 401);
  });

  it('the spending routes', async () => {
    const accountId = account();
    const order = (await createOrder({ accountId, amount: 1_000, currency: 'usd' })).json();
    system.emulator.controller.succeedPaymentIntent(order.paymentIntentId);
    await waitUntil(async () => (await db.prisma.ledgerEntry.count({ where: { accountId } })) === 1, 20_000, 'the payment to be credited');
    const post = (url: string, payload?: object, headers: Record<string, string> = service) =>
      app.inject({ method: 'POST', url, headers, ...(payload ? { payload } : {}) });
    const user = await userAuth(accountId);

    const debits = '/accounts/{id}/debits';
    const debit = { amount: 100, currency: 'usd', reference: `deb-${randomUUID()}`, description: 'one report' };
    conforms('POST', debits, await post(`/accounts/${accountId}/debits`, debit), 201);
    conforms('POST', debits, await post(`/accounts/${accountId}/debits`, debit), 200);
    conforms('POST', debits, await post(`/accounts/${accountId}/debits`, { ...debit, amount: 101 }), 409);
    conforms('POST', debits, await post(`/accounts/${accountId}/debits`, { ...debit, amount: 5_000, reference: 'big' }), 422);
    conforms('POST', debits, await post(`/accounts/${accountId}/debits`, { ...debit, currency: 'eur', reference: 'eur' }), 400);
    conforms('POST', debits, await post('/accounts/acct_nobody/debits', debit), 404);
    conforms('POST', debits, await post(`/accounts/${accountId}/debits`, debit, {}), 401);
    conforms('POST', debits, await post(`/accounts/${accountId}/debits`, debit, user), 403);

    const holds = '/accounts/{id}/holds';
    const hold = { amount: 300, currency: 'usd', reference: `hold-${randomUUID()}` };
    const placed = await post(`/accounts/${accountId}/holds`, hold);
    conforms('POST', holds, placed, 201);
    conforms('POST', holds, await post(`/accounts/${accountId}/holds`, hold), 200);
    conforms('POST', holds, await post(`/accounts/${accountId}/holds`, { ...hold, amount: 1 }), 409);
    conforms('POST', holds, await post(`/accounts/${accountId}/holds`, { ...hold, amount: 5_000, reference: 'big' }), 422);
    conforms('POST', holds, await post(`/accounts/${accountId}/holds`, { ...hold, expiresInSeconds: 0 }), 400);
    conforms('POST', holds, await post('/accounts/acct_nobody/holds', hold), 404);
    conforms('POST', holds, await post(`/accounts/${accountId}/holds`, hold, {}), 401);
    conforms('POST', holds, await post(`/accounts/${accountId}/holds`, hold, user), 403);

    const holdId = placed.json().id;
    const other = (await post(`/accounts/${accountId}/holds`, { ...hold, reference: `other-${randomUUID()}` })).json().id;
    conforms('GET', '/holds/{id}', await app.inject({ method: 'GET', url: `/holds/${holdId}`, headers: service }), 200);
    conforms('GET', '/holds/{id}', await app.inject({ method: 'GET', url: '/holds/hold_nobody', headers: service }), 404);
    conforms('GET', '/holds/{id}', await app.inject({ method: 'GET', url: `/holds/${holdId}` }), 401);
    conforms('GET', '/holds/{id}', await app.inject({ method: 'GET', url: `/holds/${holdId}`, headers: user }), 403);
    const capture = '/holds/{id}/capture';
    conforms('POST', capture, await post(`/holds/${holdId}/capture`, { amount: 301 }), 400);
    conforms('POST', capture, await post(`/holds/${holdId}/capture`, { amount: 200 }), 200);
    conforms('POST', capture, await post(`/holds/${holdId}/capture`, { amount: 100 }), 409);
    conforms('POST', capture, await post('/holds/hold_nobody/capture'), 404);
    conforms('POST', capture, await post(`/holds/${holdId}/capture`, undefined, {}), 401);
    conforms('POST', capture, await post(`/holds/${holdId}/capture`, undefined, user), 403);
    const release = '/holds/{id}/release';
    conforms('POST', release, await post(`/holds/${other}/release`), 200);
    conforms('POST', release, await post(`/holds/${holdId}/release`), 409);
    conforms('POST', release, await post('/holds/hold_nobody/release'), 404);
    conforms('POST', release, await post(`/holds/${other}/release`, undefined, {}), 401);
    conforms('POST', release, await post(`/holds/${other}/release`, undefined, user), 403);

    const balance = '/accounts/{id}/balance';
    const read = await app.inject({ method: 'GET', url: `/accounts/${accountId}/balance`, headers: user });
    conforms('GET', balance, read, 200);
    expect(read.json()).toEqual({ accountId, currency: 'usd', balance: 700, held: 0, available: 700 });
    conforms('GET', balance, await app.inject({ method: 'GET', url: `/accounts/${account()}/balance`, headers: user }), 404);
    conforms('GET', balance, await app.inject({ method: 'GET', url: '/accounts/a%20b/balance', headers: service }), 400);
    conforms('GET', balance, await app.inject({ method: 'GET', url: `/accounts/${accountId}/balance` }), 401);
  });

  it('the review routes', async () => {
    const accountId = account();
    const order = (await createOrder({ accountId, amount: 900, currency: 'usd' })).json();
    const other = (await createOrder({ accountId, amount: 100, currency: 'usd' })).json();
    // Put the order under review the way the worker does when a payment does not match it.
    await db.prisma.order.update({ where: { id: order.id }, data: { status: 'needs_review', reviewReason: 'amount_mismatch' } });

    const list = await app.inject({ method: 'GET', url: '/admin/reviews', headers: admin });
    conforms('GET', '/admin/reviews', list, 200);
    expect(list.json()).toEqual(expect.arrayContaining([expect.objectContaining({ orderId: order.id })]));
    conforms('GET', '/admin/reviews', await app.inject({ method: 'GET', url: '/admin/reviews' }), 401);
    conforms(
      'GET',
      '/admin/reviews/{orderId}',
      await app.inject({ method: 'GET', url: `/admin/reviews/${order.id}`, headers: admin }),
      200,
    );
    conforms(
      'GET',
      '/admin/reviews/{orderId}',
      await app.inject({ method: 'GET', url: '/admin/reviews/ord_unknown', headers: admin }),
      404,
    );
    conforms('GET', '/admin/reviews/{orderId}', await app.inject({ method: 'GET', url: `/admin/reviews/${order.id}` }), 401);

    const resolve = (orderId: string, payload: object, headers: Record<string, string> = admin) =>
      app.inject({ method: 'POST', url: `/admin/reviews/${orderId}/resolve`, headers, payload });
    const path = '/admin/reviews/{orderId}/resolve';
    conforms('POST', path, await resolve(order.id, { decision: 'refund' }), 400);
    conforms('POST', path, await resolve(order.id, { decision: 'dismiss', note: 'n' }, {}), 401);
    conforms('POST', path, await resolve('ord_unknown', { decision: 'dismiss', note: 'n' }), 404);
    conforms('POST', path, await resolve(other.id, { decision: 'dismiss', note: 'n' }), 409);
    const resolved = await resolve(order.id, { decision: 'dismiss', note: 'checked with the customer' });
    conforms('POST', path, resolved, 200);
    expect(resolved.json()).toMatchObject({ outcome: 'resolved', amount: 0 });
  });

  it('drove every documented operation', () => {
    const driven = new Set([...checked].map((answer) => answer.split(' ').slice(0, 2).join(' ')));
    const documented = Object.entries(spec.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.filter((operation) => !driven.has(operation))).toEqual([]);
  });
});
