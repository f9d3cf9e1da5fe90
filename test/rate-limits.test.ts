import { randomUUID } from 'node:crypto';
import { createStripeClient } from '@ledger/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStripeEmulator, type StripeEmulator } from '../packages/stripe-emulator/src/app.js';
import { JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET, ORDERS_API_KEYS, serviceAuth, userAuth } from './helpers/auth.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { closeAll, startChild, type RunningProcess } from '@ledger/testkit';
import { buildTestReceiver, WEBHOOK_SECRETS } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// Two receiver processes on one Redis count against one budget: a client gets no more by spreading
// its requests over the load balancer's targets.

const PER_ACCOUNT = 4;
const PER_IP = 6;

let db: TestDatabase;
let emulator: StripeEmulator;
let emulatorUrl: string;
const prefix = uniquePrefix();
const receivers: { process: RunningProcess; url: string }[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  emulator = buildStripeEmulator({ webhookSecret: WEBHOOK_SECRETS[0] });
  emulatorUrl = await emulator.app.listen({ port: 0, host: '127.0.0.1' });
  for (let i = 0; i < 2; i += 1) {
    const process = startChild({
      script: 'apps/webhook-receiver/src/server.ts',
      env: {
        LOG_LEVEL: 'info',
        DATABASE_URL: db.url,
        REDIS_URL: TEST_REDIS_URL,
        QUEUE_PREFIX: prefix,
        PORT: '0',
        STRIPE_API_BASE: emulatorUrl,
        STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRETS.join(','),
        ORDERS_API_KEYS: ORDERS_API_KEYS.join(','),
        ORDERS_JWT_SECRET: JWT_SECRET,
        ORDERS_JWT_ISSUER: JWT_ISSUER,
        ORDERS_JWT_AUDIENCE: JWT_AUDIENCE,
        ORDERS_RATE_LIMIT_ACCOUNT: String(PER_ACCOUNT),
        ORDERS_RATE_LIMIT_IP: String(PER_IP),
        ORDERS_RATE_LIMIT_WINDOW_SECONDS: '60',
      },
    });
    const line = await process.waitFor(/webhook receiver listening/);
    receivers.push({ process, url: /listening on (http:\/\/[^"\s]+)/.exec(line)![1]! });
  }
});
afterAll(async () => {
  await closeAll('after the rate-limit tests', [
    ...receivers.map((receiver) => () => receiver.process.stop()),
    () => emulator?.app.close(),
    () => deleteKeysWithPrefix(prefix),
    () => db?.drop(),
  ]);
});

let turn = 0;
/** Sends to the two receivers in turn. */
async function send(method: string, path: string, headers: Record<string, string>, body?: object) {
  const { url } = receivers[turn++ % receivers.length]!;
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: (await response.json()) as Record<string, string>,
  };
}
const createOrder = (headers: Record<string, string>, body: object) =>
  send('POST', '/orders', { ...headers, 'idempotency-key': randomUUID() }, { amount: 1_000, currency: 'usd', ...body });

/** `ledger_rate_limited_total` by scope, summed over both receivers. */
async function limitedTotals(): Promise<Record<string, number>> {
  const totals: Record<string, number> = {};
  for (const { url } of receivers) {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const [, scope, value] of text.matchAll(/^ledger_rate_limited_total\{[^}]*scope="(\w+)"[^}]*\} (\d+)/gm)) {
      totals[scope!] = (totals[scope!] ?? 0) + Number(value);
    }
  }
  return totals;
}

function expectLimited(answer: Awaited<ReturnType<typeof send>>, scope: 'account' | 'address') {
  expect(answer.status).toBe(429);
  expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(answer.retryAfter)).toBeLessThanOrEqual(60);
  expect(answer.body).toMatchObject({ error: 'rate_limited', message: expect.stringContaining(scope), requestId: expect.any(String) });
}

describe('rate limits shared by two receiver processes', () => {
  it('let one account create PER_ACCOUNT orders per window, over both processes; other accounts and the merchant backend go on', async () => {
    const accountId = `acct_limited_${randomUUID().slice(0, 6)}`;
    const answers = [];
    for (let i = 0; i < PER_ACCOUNT + 3; i += 1) answers.push(await createOrder(serviceAuth(), { accountId }));
    expect(answers.map((answer) => answer.status)).toEqual([...Array(PER_ACCOUNT).fill(201), 429, 429, 429]);
    for (const answer of answers.slice(PER_ACCOUNT)) expectLimited(answer, 'account');
    // What was refused created nothing: no order, no PaymentIntent spent at Stripe.
    expect(await db.prisma.order.count({ where: { accountId } })).toBe(PER_ACCOUNT);
    // Another account is not affected, and the service key is not limited by address (it has now
    // sent more than PER_IP requests from this one).
    expect((await createOrder(serviceAuth(), { accountId: `${accountId}_other` })).status).toBe(201);
  });

  it('limit users by address across accounts, and confirms per account', async () => {
    const users = Array.from({ length: PER_IP + 2 }, (_, i) => `acct_user_${i}_${randomUUID().slice(0, 6)}`);
    const answers = [];
    for (const user of users) answers.push(await createOrder(await userAuth(user), {}));
    expect(answers.map((answer) => answer.status)).toEqual([...Array(PER_IP).fill(201), 429, 429]);
    for (const answer of answers.slice(PER_IP)) expectLimited(answer, 'address');

    const first = answers[0]!.body;
    const auth = await userAuth(users[0]!);
    const confirms = [];
    for (let i = 0; i < PER_ACCOUNT + 1; i += 1) confirms.push(await send('POST', `/orders/${first.id}/confirm`, auth));
    expect(confirms.map((answer) => answer.status)).toEqual([...Array(PER_ACCOUNT).fill(202), 429]);
    expectLimited(confirms[PER_ACCOUNT]!, 'account');

    expect(await limitedTotals()).toEqual({ account: 4, ip: 2 });
  });
});

describe('rate limits without Redis', () => {
  it('let requests through (fail open) and count the skipped checks', async () => {
    const stripe = createStripeClient('sk_test_rate', emulatorUrl);
    // Nothing listens on port 9: every Redis command fails at once.
    const app = await buildTestReceiver({
      databaseUrl: db.url,
      prefix,
      stripe,
      redisUrl: 'redis://127.0.0.1:9',
      rateLimits: { windowSeconds: 60, perAccount: 1, perIp: 1 },
    });
    try {
      for (let i = 0; i < 3; i += 1) {
        const response = await app.inject({
          method: 'POST',
          url: '/orders',
          headers: { ...(await userAuth('acct_no_redis')), 'idempotency-key': randomUUID() },
          payload: { amount: 100, currency: 'usd' },
        });
        expect(response.statusCode).toBe(201);
      }
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/^ledger_rate_limit_unavailable_total\{scope="ip"\} 3$/m);
      expect(metrics).toMatch(/^ledger_rate_limit_unavailable_total\{scope="account"\} 3$/m);
    } finally {
      await app.close();
    }
  });
});
