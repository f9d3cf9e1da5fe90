import { createHmac, randomBytes } from 'node:crypto';
import { MAX_AMOUNT, QUEUES, createStripeClient, type QueueName } from '@ledger/shared';
import type { Queue } from 'bullmq';
import { closeAll } from '@ledger/testkit';
import fc from 'fast-check';
import { SignJWT, UnsecuredJWT, generateKeyPair } from 'jose';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildStripeEmulator, type StripeEmulator } from '../packages/stripe-emulator/src/app.js';
import { JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET, ORDERS_API_KEYS, serviceAuth, userToken } from './helpers/auth.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { testQueue } from './helpers/queues.js';
import { ADMIN_TOKEN, buildTestReceiver, signatureHeader, WEBHOOK_SECRETS } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// Malformed and forged requests to every public route: each must be a 4xx with a JSON
// `{error, message}` body, enqueue nothing and move no money; the receiver must stay healthy.
// Bodies and headers are generated with fast-check; a failure prints the counterexample and seed.

let db: TestDatabase;
let app: FastifyInstance;
let emulator: StripeEmulator;
let queues: Queue[];
const prefix = uniquePrefix();
const QUEUE_NAMES: QueueName[] = [QUEUES.stripeEvents, QUEUES.paymentSync, QUEUES.reconcile];

/** Requests the running test sent, per route. */
const sent = new Map<string, number>();

beforeAll(async () => {
  db = await createTestDatabase();
  // The emulator stands in for Stripe, so that the valid requests at the end really work.
  emulator = buildStripeEmulator({});
  const emulatorUrl = await emulator.app.listen({ port: 0, host: '127.0.0.1' });
  app = await buildTestReceiver({ databaseUrl: db.url, prefix, stripe: createStripeClient('sk_test_bad_input', emulatorUrl) });
  queues = QUEUE_NAMES.map((name) => testQueue(prefix, name));
});
afterAll(async () => {
  await closeAll('after the bad-input tests', [
    () => app?.close(),
    ...(queues ?? []).map((queue) => () => queue.close()),
    () => emulator?.app.close(),
    () => deleteKeysWithPrefix(prefix),
    () => db?.drop(),
  ]);
});

async function send(route: string, options: InjectOptions): Promise<LightMyRequestResponse> {
  sent.set(route, (sent.get(route) ?? 0) + 1);
  return app.inject(options);
}

/** The contract's error answer: a 4xx, JSON, `{error: <machine code>, message: <sentence>}`. */
function expectClientError(response: LightMyRequestResponse, status?: number | number[]): void {
  const detail = `${response.statusCode} ${response.body.slice(0, 300)}`;
  if (status !== undefined) expect([status].flat(), detail).toContain(response.statusCode);
  expect(response.statusCode, detail).toBeGreaterThanOrEqual(400);
  expect(response.statusCode, detail).toBeLessThan(500);
  expect(response.headers['content-type'], detail).toMatch(/^application\/json/);
  const body = JSON.parse(response.body) as { error?: unknown; message?: unknown };
  expect(body.error, detail).toEqual(expect.stringMatching(/^[a-z][a-z0-9_]*$/));
  expect(body.message, detail).toEqual(expect.any(String));
  expect((body.message as string).length, detail).toBeGreaterThan(0);
}

async function jobCount(): Promise<number> {
  const counts = await Promise.all(queues.map((queue) => queue.getJobCounts()));
  return counts.reduce((sum, count) => sum + Object.values(count).reduce((a, b) => a + b, 0), 0);
}

/** Everything a request that got through could have left behind: jobs, and rows of each table it could write. */
async function footprint() {
  const [jobs, ledgerEntries, stripeEvents, orders, accounts] = await Promise.all([
    jobCount(),
    db.prisma.ledgerEntry.count(),
    db.prisma.stripeEvent.count(),
    db.prisma.order.count(),
    db.prisma.account.count(),
  ]);
  return { jobs, ledgerEntries, stripeEvents, orders, accounts };
}

/**
 * For every test of the calling describe block: it sent bad requests, they queued nothing, stored
 * nothing (not even an account row: validation comes before the account is created), and the
 * receiver is still healthy. Measured against the test's own start, so each test stands alone and
 * in any order.
 */
function refusedRequestsLeaveNoTrace(): void {
  let before: Awaited<ReturnType<typeof footprint>>;
  beforeEach(async () => {
    sent.clear();
    before = await footprint();
  });
  afterEach(async () => {
    expect(sent.size, 'requests sent by this test').toBeGreaterThan(0);
    expect(await footprint()).toEqual(before);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });
}

// ---------------------------------------------------------------------------------------------
// Webhooks

const now = () => Math.floor(Date.now() / 1000);
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** A well-formed event of a handled type, as Stripe would send it. */
function stripeEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `evt_${hex(12)}`,
    object: 'event',
    api_version: '2025-01-27.acacia',
    created: now(),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: 'payment_intent.succeeded',
    data: {
      object: {
        id: `pi_${hex(12)}`,
        object: 'payment_intent',
        amount: 1_000,
        amount_received: 1_000,
        currency: 'usd',
        metadata: { order_id: `ord_${hex(16)}` },
        status: 'succeeded',
      },
    },
    ...overrides,
  };
}

function postWebhook(payload: string | Buffer, headers: Record<string, string | undefined>) {
  const defined = Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined));
  return send('POST /webhooks/stripe', { method: 'POST', url: '/webhooks/stripe', payload, headers: defined });
}

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8'];
const WRONG_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/octet-stream',
  'application/jsonx',
  'json',
];
const anyContentType = fc.option(fc.constantFrom(...JSON_TYPES, ...WRONG_TYPES), { nil: undefined });

/** Printable ASCII (what an HTTP header can carry as is). */
const headerText = (maxLength: number) => fc.stringMatching(new RegExp(`^[\\x20-\\x7e]{0,${maxLength}}$`));
const hexText = (length: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`));

/** Bodies of every kind: text with odd unicode (lone surrogates, NUL, RTL marks), JSON, events. */
const anyBody = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.json({ maxDepth: 3 }),
  fc.constant(JSON.stringify(stripeEvent())),
  fc.constantFrom('\uFEFF{}', '\u202E{"id":"evt_x"}', '{"id":"evt_\u0000"}', '\uD800', 'null', '[]', '0', '""'),
);

/** Stripe-Signature headers nobody with the secret made. */
const forgedSignature = fc.oneof(
  fc.constant(undefined),
  fc.constant(''),
  headerText(200),
  fc.tuple(fc.integer({ min: 0, max: 2 ** 40 }), hexText(64)).map(([t, v1]) => `t=${t},v1=${v1}`),
  hexText(64).map((v1) => `t=${now()},v1=${v1}`),
  hexText(64).map((v1) => `v1=${v1}`),
  fc.constant(`t=${now()}`),
  fc.constant(`t=${now()},v0=${'0'.repeat(64)}`),
  fc.constant(`t=${now()},v1=${'f'.repeat(64)},`.repeat(100)),
);

describe('POST /webhooks/stripe rejects what Stripe did not sign', () => {
  refusedRequestsLeaveNoTrace();

  it('any body with a forged, missing or garbled signature, under any content type', async () => {
    await fc.assert(
      fc.asyncProperty(anyBody, forgedSignature, anyContentType, async (body, signature, contentType) => {
        expectClientError(await postWebhook(body, { 'content-type': contentType, 'stripe-signature': signature }));
      }),
      { numRuns: 60 },
    );
  });

  it('a body signed with a secret the receiver does not hold', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('whsec_attacker', `whsec_${hex(16)}`, `${WEBHOOK_SECRETS[0]}x`, WEBHOOK_SECRETS[0]!.slice(0, -1)),
        async (secret) => {
          const payload = JSON.stringify(stripeEvent());
          expectClientError(
            await postWebhook(payload, { 'content-type': 'application/json', 'stripe-signature': signatureHeader(payload, secret) }),
            400,
          );
        },
      ),
      { numRuns: 12 },
    );
  });

  it('a replayed signature: valid for one body, sent with another', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.integer({ min: 1, max: 200 }), async (sameId, amount) => {
        const original = stripeEvent();
        const signature = signatureHeader(JSON.stringify(original));
        // The forger changes the amount (and maybe keeps the id) but reuses the captured header.
        const forged = stripeEvent({
          ...(sameId ? { id: original.id } : {}),
          data: { object: { ...(original.data as { object: object }).object, amount_received: amount } },
        });
        expectClientError(
          await postWebhook(JSON.stringify(forged), { 'content-type': 'application/json', 'stripe-signature': signature }),
          400,
        );
        // ...or keeps the body and moves the timestamp forward to beat the tolerance window.
        const [, v1] = signature.split(',');
        expectClientError(
          await postWebhook(JSON.stringify(original), { 'content-type': 'application/json', 'stripe-signature': `t=${now() + 1},${v1}` }),
          400,
        );
      }),
      { numRuns: 15 },
    );
  });

  it('a valid signature with a stale or future timestamp', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.integer({ min: -(10 ** 9), max: -310 }), fc.integer({ min: 310, max: 10 ** 8 })), async (offset) => {
        const payload = JSON.stringify(stripeEvent());
        const response = await postWebhook(payload, {
          'content-type': 'application/json',
          'stripe-signature': signatureHeader(payload, WEBHOOK_SECRETS[0], now() + offset),
        });
        expectClientError(response, 400);
        expect(response.json().error).toBe('timestamp_out_of_tolerance');
      }),
      { numRuns: 20 },
    );
  });

  it('validly signed bodies that are not JSON or not events (odd unicode included)', async () => {
    const notAnEvent = fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }),
      fc.json({ maxDepth: 4 }),
      fc.constantFrom(
        `\uFEFF${JSON.stringify(stripeEvent())}`,
        '{"object":"event"}',
        '{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}',
      ),
    );
    await fc.assert(
      fc.asyncProperty(notAnEvent, fc.constantFrom(...JSON_TYPES, ...WRONG_TYPES), async (payload, contentType) => {
        expectClientError(await postWebhook(payload, { 'content-type': contentType, 'stripe-signature': signatureHeader(payload) }));
      }),
      { numRuns: 50 },
    );
  });

  it('validly signed truncated JSON', async () => {
    const full = JSON.stringify(stripeEvent(), null, 2);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: full.length - 1 }), async (cut) => {
        const payload = full.slice(0, cut);
        expectClientError(
          await postWebhook(payload, { 'content-type': 'application/json', 'stripe-signature': signatureHeader(payload) }),
          400,
        );
      }),
      { numRuns: 20 },
    );
  });

  it('validly signed events missing or mistyping an envelope field', async () => {
    type Mutation = (event: Record<string, unknown>) => void;
    const mutations: Record<string, Mutation> = {
      'no id': (e) => delete e.id,
      'numeric id': (e) => (e.id = 12345),
      'id of a charge': (e) => (e.id = `ch_${hex(8)}`),
      'id with a colon': (e) => (e.id = `evt_${hex(4)}:1`),
      'id with unicode': (e) => (e.id = `evt_ü${hex(4)}`),
      'id of 300 characters': (e) => (e.id = `evt_${'a'.repeat(300)}`),
      'bare evt_': (e) => (e.id = 'evt_'),
      'object is not event': (e) => (e.object = 'payment_intent'),
      'no object': (e) => delete e.object,
      'no type': (e) => delete e.type,
      'numeric type': (e) => (e.type = 7),
      'created as a string': (e) => (e.created = String(now())),
      'no created': (e) => delete e.created,
      'no data': (e) => delete e.data,
      'data null': (e) => (e.data = null),
      'data a string': (e) => (e.data = 'pi_123'),
      'data.object null': (e) => (e.data = { object: null }),
      'data.object a string': (e) => (e.data = { object: 'pi_123' }),
      'no data.object': (e) => (e.data = {}),
    };
    await fc.assert(
      fc.asyncProperty(fc.subarray(Object.keys(mutations), { minLength: 1 }), async (names) => {
        const event = stripeEvent();
        for (const name of names) mutations[name]!(event);
        const payload = JSON.stringify(event);
        const response = await postWebhook(payload, { 'content-type': 'application/json', 'stripe-signature': signatureHeader(payload) });
        expectClientError(response, 400);
        expect(response.json().error, names.join(', ')).toBe('not_an_event');
      }),
      { numRuns: 40 },
    );
  });

  it('oversized bodies, signed or not', async () => {
    // The test receiver's webhook limit is 64 KiB.
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 64 * 1024 + 1, max: 3 * 1024 * 1024 }), fc.boolean(), async (size, signed) => {
        const event = stripeEvent({ padding: '' });
        const base = JSON.stringify(event);
        const payload = JSON.stringify({ ...event, padding: 'x'.repeat(Math.max(0, size - base.length)) });
        const response = await postWebhook(payload, {
          'content-type': 'application/json',
          'stripe-signature': signed ? signatureHeader(payload) : 't=1,v1=00',
        });
        expectClientError(response, 413);
      }),
      { numRuns: 6 },
    );
  });

  it('other methods on the webhook route', async () => {
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE'] as const) {
      expectClientError(
        await send(`${method} /webhooks/stripe`, {
          method,
          url: '/webhooks/stripe',
          payload: method === 'GET' || method === 'DELETE' ? undefined : '{}',
          headers: { 'content-type': 'application/json' },
        }),
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Orders

const validOrder = () => ({ accountId: `acct_${hex(4)}`, amount: 1_000, currency: 'usd' });

/** Sends with the service key unless `headers` says otherwise (`authorization: undefined` sends none). */
function postOrder(payload: string | Buffer | undefined, headers: Record<string, string | undefined>) {
  const defined = Object.fromEntries(
    Object.entries({ ...serviceAuth(), ...headers }).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  return send('POST /orders', { method: 'POST', url: '/orders', payload, headers: defined });
}

/** What the contract accepts for each field; a body passing all three (and nothing else) is valid. */
const isValidAccountId = (value: unknown) => typeof value === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(value);
const isValidAmount = (value: unknown) => typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= MAX_AMOUNT;
const isValidCurrency = (value: unknown) => typeof value === 'string' && /^[a-z]{3}$/.test(value.trim().toLowerCase());

const absurdAccountId = fc.oneof(
  fc.constantFrom(
    '',
    'a'.repeat(65),
    'acct/1',
    'acct 1',
    "acct'; DROP TABLE accounts;--",
    'ácct',
    '../../etc/passwd',
    'acct\u0000',
    '\u202Eacct',
    '😀',
  ),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.integer(),
  fc.constantFrom(null, true, [], {}),
);
const absurdAmount = fc.oneof(
  fc.integer({ min: -(2 ** 53), max: 0 }),
  fc.double({ min: -1e9, max: 1e9, noNaN: true, noDefaultInfinity: true }).filter((value) => !Number.isInteger(value)),
  fc.integer({ min: MAX_AMOUNT + 1, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom('1000', '', '1e3', null, true, [], { value: 1000 }),
);
const absurdCurrency = fc.oneof(
  fc.constantFrom('', 'us', 'usdd', 'u$d', '123', 'ｕｓｄ', 'US D', 'üsd', 'usd\u0000'),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.integer(),
  fc.constantFrom(null, false, ['usd']),
);

describe('POST /orders rejects what is not an order request', () => {
  refusedRequestsLeaveNoTrace();

  it('bodies with absurd, mistyped or missing fields, or fields beyond the three', async () => {
    const field = <T>(valid: T, absurd: fc.Arbitrary<unknown>) => fc.oneof(fc.constant(valid), absurd, fc.constant(undefined));
    const body = fc.record({
      accountId: field('acct_fuzz', absurdAccountId),
      amount: field(1_000, absurdAmount),
      currency: field('usd', absurdCurrency),
      extra: fc.option(
        fc.dictionary(
          fc
            .string({ minLength: 1, maxLength: 10 })
            .filter((key) => !['accountId', 'amount', 'currency', '__proto__', 'constructor'].includes(key)),
          fc.jsonValue(),
          { minKeys: 1, maxKeys: 3 },
        ),
        { nil: undefined },
      ),
    });
    await fc.assert(
      fc.asyncProperty(body, fc.stringMatching(/^[\x21-\x7e]{1,255}$/), async ({ extra, ...fields }, key) => {
        const candidate = Object.fromEntries(Object.entries({ ...fields, ...extra }).filter(([, value]) => value !== undefined));
        const valid =
          isValidAccountId(candidate.accountId) &&
          isValidAmount(candidate.amount) &&
          isValidCurrency(candidate.currency) &&
          Object.keys(candidate).length === 3;
        fc.pre(!valid);
        expectClientError(await postOrder(JSON.stringify(candidate), { 'content-type': 'application/json', 'idempotency-key': key }), 400);
      }),
      { numRuns: 80 },
    );
  });

  it('raw bodies JSON cannot hold as an order: out-of-range numbers, truncated, non-objects, prototype keys', async () => {
    const raw = [
      '{"accountId":"acct_raw","amount":1e400,"currency":"usd"}',
      '{"accountId":"acct_raw","amount":-1e400,"currency":"usd"}',
      '{"accountId":"acct_raw","amount":100000000000000000000000,"currency":"usd"}',
      '{"accountId":"acct_raw","amount":0.5,"currency":"usd"}',
      '{"accountId":"acct_raw","amount":NaN,"currency":"usd"}',
      '{"accountId":"acct_raw","amount":1000,"currency":"usd"',
      '{"accountId":"acct_raw","amount":1000,"currency":"usd",}',
      "{'accountId':'acct_raw','amount':1000,'currency':'usd'}",
      '{"__proto__":{"amount":1},"accountId":"acct_raw","amount":1000,"currency":"usd"}',
      '{"constructor":{"prototype":{"x":1}},"accountId":"acct_raw","amount":1000,"currency":"usd"}',
      'null',
      '[{"accountId":"acct_raw","amount":1000,"currency":"usd"}]',
      '"acct_raw"',
      '1000',
      '',
    ];
    for (const payload of raw)
      expectClientError(await postOrder(payload, { 'content-type': 'application/json', 'idempotency-key': `raw-${hex(4)}` }));
    const full = JSON.stringify(validOrder());
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: full.length - 1 }), async (cut) => {
        expectClientError(
          await postOrder(full.slice(0, cut), { 'content-type': 'application/json', 'idempotency-key': `cut-${cut}` }),
          400,
        );
      }),
      { numRuns: 15 },
    );
  });

  it('a valid body without a usable Idempotency-Key', async () => {
    const badKey = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom('', ' ', 'two words', '\t', 'k'.repeat(256), 'clé', 'key\u00a0'),
      fc.stringMatching(/^[\x21-\x7e]{0,20} [\x21-\x7e]{0,20}$/),
    );
    await fc.assert(
      fc.asyncProperty(badKey, async (key) => {
        const response = await postOrder(JSON.stringify(validOrder()), { 'content-type': 'application/json', 'idempotency-key': key });
        expectClientError(response, 400);
        expect(response.json().error).toBe('idempotency_key_required');
      }),
      { numRuns: 15 },
    );
  });

  it('wrong content types and oversized bodies', async () => {
    const body = JSON.stringify(validOrder());
    for (const contentType of [...WRONG_TYPES, undefined]) {
      expectClientError(
        await postOrder(contentType === 'application/x-www-form-urlencoded' ? 'accountId=a&amount=1&currency=usd' : body, {
          'content-type': contentType,
          'idempotency-key': `ct-${hex(4)}`,
        }),
      );
    }
    for (const size of [64 * 1024 + 1, 1024 * 1024]) {
      const payload = JSON.stringify({ ...validOrder(), padding: 'x'.repeat(size) });
      expectClientError(await postOrder(payload, { 'content-type': 'application/json', 'idempotency-key': `big-${size}` }), 413);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Order lookups and confirmations

/** Ids no order has: random text, odd unicode, injection and traversal attempts, well-shaped unknowns. */
const absurdOrderId = fc
  .oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
    fc.stringMatching(/^ord_[A-Za-z0-9_-]{20,40}$/),
    fc.stringMatching(/^ord_[A-Za-z0-9_-]{0,19}$/),
    fc.constantFrom(
      "ord_' OR '1'='1",
      '../../admin/queues',
      '..',
      '%00',
      'ord_\u0000',
      '0',
      '-1',
      'null',
      'undefined',
      'ord_😀😀😀😀😀😀😀😀😀😀😀😀',
    ),
  )
  // Longer ids go past the router's parameter limit: that answer is covered by the known-issue test below.
  .filter((id) => encodeURIComponent(id).length <= 100);

describe('GET /orders/:id and POST /orders/:id/confirm with ids no order has', () => {
  refusedRequestsLeaveNoTrace();

  it('answers 404 order_not_found and queues no check with Stripe', async () => {
    await fc.assert(
      fc.asyncProperty(absurdOrderId, fc.boolean(), async (id, confirm) => {
        const url = `/orders/${encodeURIComponent(id)}${confirm ? '/confirm' : ''}`;
        const response = await send(confirm ? 'POST /orders/:id/confirm' : 'GET /orders/:id', {
          method: confirm ? 'POST' : 'GET',
          url,
          headers: serviceAuth(),
        });
        expectClientError(response, 404);
      }),
      { numRuns: 60 },
    );
    // No job queued (no check with Stripe): refusedRequestsLeaveNoTrace checks it after the test.
  });
});

// ---------------------------------------------------------------------------------------------
// Orders credentials

const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const nowSeconds = () => Math.floor(Date.now() / 1000);
const goodClaims = () => ({ sub: 'acct_token', iss: JWT_ISSUER, aud: JWT_AUDIENCE, exp: nowSeconds() + 300 });

/** Signs `claims` with HS256 and `secret` by hand, with whatever header the forger likes. */
function hs256(claims: Record<string, unknown>, secret = JWT_SECRET, header: Record<string, unknown> = {}): string {
  const signingInput = `${b64url({ alg: 'HS256', ...header })}.${b64url(claims)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

/**
 * Tokens and keys nobody holding the receiver's secrets made, or made for something else: each
 * must be answered 401 with a Bearer challenge, whatever route it is sent to.
 */
async function forgedCredentials(): Promise<[string, string][]> {
  const { privateKey: rsaKey } = await generateKeyPair('RS256');
  const valid = hs256(goodClaims());
  const [header, payload, signature] = valid.split('.') as [string, string, string];
  const flipped = `${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`;
  return [
    ['alg none', `Bearer ${new UnsecuredJWT(goodClaims()).encode()}`],
    ['alg none, signature kept', `Bearer ${b64url({ alg: 'none' })}.${payload}.${signature}`],
    ['alg None in a relabelled header', `Bearer ${b64url({ alg: 'None', typ: 'JWT' })}.${payload}.`],
    ['RS256 (an algorithm not configured)', `Bearer ${await new SignJWT(goodClaims()).setProtectedHeader({ alg: 'RS256' }).sign(rsaKey)}`],
    [
      'HS512 with the right secret',
      `Bearer ${await new SignJWT(goodClaims()).setProtectedHeader({ alg: 'HS512' }).sign(new TextEncoder().encode(JWT_SECRET.repeat(2)))}`,
    ],
    ['another secret', `Bearer ${hs256(goodClaims(), `${JWT_SECRET}x`)}`],
    ['a flipped signature', `Bearer ${header}.${payload}.${flipped}`],
    ['no signature', `Bearer ${header}.${payload}.`],
    ['payload swapped for another account', `Bearer ${header}.${b64url({ ...goodClaims(), sub: 'acct_victim' })}.${signature}`],
    ['expired', `Bearer ${await userToken('acct_token', {}, { expiresIn: -60 })}`],
    ['not valid yet', `Bearer ${await userToken('acct_token', {}, { notBefore: 600 })}`],
    ['no exp', `Bearer ${await userToken('acct_token', {}, { expiresIn: undefined })}`],
    ['no sub', `Bearer ${await userToken(undefined)}`],
    ['sub that is no account id', `Bearer ${await userToken('acct/../../admin')}`],
    ['another issuer', `Bearer ${await userToken('acct_token', { iss: 'https://evil.example' })}`],
    ['no issuer', `Bearer ${hs256({ ...goodClaims(), iss: undefined })}`],
    ['another audience', `Bearer ${await userToken('acct_token', { aud: 'another-api' })}`],
    ['a critical header nobody understands', `Bearer ${hs256(goodClaims(), JWT_SECRET, { crit: ['x-unknown'], 'x-unknown': 1 })}`],
    ['two tokens', `Bearer ${valid} ${valid}`],
    ['a token with a trailing space', `Bearer ${valid} `],
    ['four segments', `Bearer ${valid}.${signature}`],
    ['garbage segments', 'Bearer aaaa.bbbb.cccc'],
    ['JSON instead of base64url', `Bearer ${JSON.stringify({ alg: 'none' })}.${JSON.stringify(goodClaims())}.`],
    ['lower-case scheme, no token', 'bearer'],
    ['Bearer only', 'Bearer'],
    ['two spaces', `Bearer  ${ORDERS_API_KEYS[0]}`],
    ['Basic with the API key as password', `Basic ${Buffer.from(`x:${ORDERS_API_KEYS[0]}`).toString('base64')}`],
    ['the API key without a scheme', ORDERS_API_KEYS[0]!],
    ['the API key minus a character', `Bearer ${ORDERS_API_KEYS[0]!.slice(0, -1)}`],
    ['the API key plus a character', `Bearer ${ORDERS_API_KEYS[0]}x`],
    ['both API keys', `Bearer ${ORDERS_API_KEYS.join(',')}`],
    ['the admin token', `Bearer ${ADMIN_TOKEN}`],
    ['a 10 kB token', `Bearer ${'a'.repeat(10_000)}`],
  ];
}

describe('orders routes with missing, malformed or forged credentials', () => {
  refusedRequestsLeaveNoTrace();

  const routes = [
    ['POST', '/orders', 'POST /orders'],
    ['GET', `/orders/ord_${'A'.repeat(22)}`, 'GET /orders/:id'],
    ['GET', `/orders/ord_${'A'.repeat(22)}?wait=5&status=awaiting_payment`, 'GET /orders/:id'],
    ['POST', `/orders/ord_${'A'.repeat(22)}/confirm`, 'POST /orders/:id/confirm'],
  ] as const;

  it('answers 401 with a Bearer challenge for every forged or malformed credential, on every route', async () => {
    const credentials = await forgedCredentials();
    // The forger's tool makes tokens the receiver does accept when nothing is tampered with.
    const control = await send('GET /orders/:id', {
      method: 'GET',
      url: routes[1][1],
      headers: { authorization: `Bearer ${hs256(goodClaims())}` },
    });
    expectClientError(control, 404);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...credentials), fc.constantFrom(...routes), async ([name, authorization], [method, url, route]) => {
        const started = Date.now();
        const response = await send(route, {
          method,
          url,
          headers: { authorization, 'idempotency-key': `forged-${hex(4)}` },
          payload: method === 'POST' && url === '/orders' ? { accountId: 'acct_token', amount: 1_000, currency: 'usd' } : undefined,
        });
        expectClientError(response, 401);
        expect(response.headers['www-authenticate'], name).toMatch(/^Bearer realm="orders"/);
        // Refused before any waiting: a long-poll with a bad token does not hold a connection.
        expect(Date.now() - started, name).toBeLessThan(2_000);
      }),
      { numRuns: 120 },
    );
  });

  it('answers 401 for random Authorization headers and no header at all', async () => {
    const authorization = fc.oneof(
      fc.constant(undefined),
      fc.constant(''),
      headerText(120),
      headerText(120).map((token) => `Bearer ${token}`),
      fc
        .tuple(fc.base64String({ maxLength: 60 }), fc.base64String({ maxLength: 200 }), fc.base64String({ maxLength: 60 }))
        .map((parts) => `Bearer ${parts.join('.')}`),
    );
    await fc.assert(
      fc.asyncProperty(authorization, fc.constantFrom(...routes), async (auth, [method, url, route]) => {
        const response = await send(route, { method, url, headers: auth === undefined ? {} : { authorization: auth } });
        expectClientError(response, 401);
        expect(response.headers['www-authenticate']).toMatch(/^Bearer realm="orders"/);
      }),
      { numRuns: 60 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Admin routes

describe('admin routes without valid credentials', () => {
  refusedRequestsLeaveNoTrace();

  it('answer 401 whatever the Authorization header holds', async () => {
    const routes = [
      ['GET', '/accounts/acct_admin'],
      ['GET', '/accounts/acct_admin/ledger'],
      ['GET', '/admin/queues'],
      ['GET', '/admin/queues/api/queues'],
      ['PUT', '/admin/queues/api/queues/stripe-events/pause'],
      ['PUT', '/admin/queues/api/queues/stripe-events/retry/failed'],
      ['PUT', '/admin/queues/api/queues/stripe-events/clean/failed'],
    ] as const;
    const nearMiss = [ADMIN_TOKEN.slice(0, -1), `${ADMIN_TOKEN}x`, ADMIN_TOKEN.toUpperCase(), ` ${ADMIN_TOKEN}`];
    const authorization = fc.oneof(
      fc.constant(undefined),
      fc.constant(''),
      headerText(100),
      headerText(60).map((token) => `Bearer ${token}`),
      fc.constantFrom(...nearMiss).map((token) => `Bearer ${token}`),
      fc.constantFrom(...nearMiss).map((token) => `Basic ${Buffer.from(`admin:${token}`).toString('base64')}`),
      fc.constant(`Basic ${Buffer.from(ADMIN_TOKEN).toString('base64')}`), // no colon: not user:password
      fc.constant('Basic !!!not-base64!!!'),
      fc.constant(`Token ${ADMIN_TOKEN}`),
      fc.constant('Bearer'),
      fc.constant(`Bearer  ${ADMIN_TOKEN}`),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), authorization, async ([method, url], auth) => {
        const response = await send(`${method} ${url.replace(/acct_admin|stripe-events/, ':id')}`, {
          method,
          url,
          headers: auth === undefined ? {} : { authorization: auth },
        });
        expectClientError(response, 401);
      }),
      { numRuns: 50 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Valid requests

describe('valid requests', () => {
  // The control for all of the above: the same receiver takes what is valid.
  it('the receiver takes a valid webhook and a valid order', async () => {
    const before = await footprint();
    const event = stripeEvent();
    const payload = JSON.stringify(event);
    const delivered = await app.inject({
      method: 'POST',
      url: '/webhooks/stripe',
      payload,
      headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signatureHeader(payload) },
    });
    expect(delivered.statusCode).toBe(200);
    expect(delivered.json()).toEqual({ received: true });
    expect(await queues[0]!.getJob(event.id as string)).toBeDefined();
    expect(await jobCount()).toBe(before.jobs + 1);

    const body = validOrder();
    const created = await app.inject({
      method: 'POST',
      url: '/orders',
      payload: body,
      headers: { ...serviceAuth(), 'idempotency-key': `valid-${hex(4)}` },
    });
    expect(created.statusCode).toBe(201);
    const order = created.json();
    expect(order).toMatchObject({
      accountId: body.accountId,
      amount: body.amount,
      currency: 'usd',
      status: 'awaiting_payment',
      paymentIntentId: expect.stringMatching(/^pi_/),
    });
    const fetched = await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: serviceAuth() });
    expect(fetched.statusCode).toBe(200);
    expect(fetched.json().id).toBe(order.id);
    expect(await db.prisma.ledgerEntry.count()).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Found by this suite and fixed; kept so they stay fixed.

describe('edge cases found by this suite', () => {
  refusedRequestsLeaveNoTrace();

  // Fastify answers URLs it cannot decode, and path parameters longer than its router allows,
  // before any hook or error handler runs: `{"error":"Bad Request","code":"FST_ERR_BAD_URL",…}`
  // (a 414 also says "Bad Request"), not the contract's machine code, and without a request id.
  // Fix: handle them in buildApp's `frameworkErrors` option (apps/webhook-receiver/src/app.ts).
  it('undecodable URLs and over-long ids get the contract error shape', async () => {
    for (const url of [
      '/orders/%E0%A4%A',
      '/orders/%',
      `/orders/%zz/confirm`,
      `/orders/ord_${'A'.repeat(120)}`,
      `/orders/ord_${'A'.repeat(120)}/confirm`,
    ]) {
      const response = await send('GET /orders/:id', { method: url.endsWith('/confirm') ? 'POST' : 'GET', url });
      expectClientError(response);
      expect(response.json().requestId).toEqual(expect.any(String));
    }
  });

  // The receiver's envelope check took any `typeof data.object === 'object'` (arrays included) and
  // any number as `created` (apps/webhook-receiver/src/routes/webhooks.ts), while the job schema
  // the worker applies wants a record and a safe integer (packages/shared/src/stripe-events.ts). Such an
  // event was acknowledged 200 and queued, and the worker failed its job for good ("not a Stripe
  // event job: …") without an inbox row. The contract asks for 400 for a body that is not an event.
  const acceptedButNotAnEvent: [string, Record<string, unknown>][] = [
    ['data.object is an array', { data: { object: [] } }],
    ['created is not an integer', { created: 1_700_000_000.5 }],
    ['created is beyond a safe integer', { created: 1e300 }],
  ];
  for (const [what, overrides] of acceptedButNotAnEvent) {
    it(`a validly signed event whose ${what} is refused with 400`, async () => {
      const payload = JSON.stringify(stripeEvent(overrides));
      const response = await postWebhook(payload, { 'content-type': 'application/json', 'stripe-signature': signatureHeader(payload) });
      expectClientError(response, 400);
    });
  }
});
