import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { QUEUES } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import { SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadReceiverEnv } from '../apps/webhook-receiver/src/env.js';
import { createOrdersAuthenticator } from '../apps/webhook-receiver/src/orders-auth.js';
import { ordersAuthFromEnv } from '../apps/webhook-receiver/src/orders-env.js';
import { JWT_SECRET, ORDERS_API_KEYS, serviceAuth, userAuth, userToken } from './helpers/auth.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { testQueue } from './helpers/queues.js';
import { ADMIN_TOKEN, buildTestReceiver } from './helpers/receiver.js';
import { startTestSystem, type TestSystem } from './helpers/system.js';

// Who may do what on the orders API: each account boundary, with real tokens and keys against the
// real receiver (PostgreSQL, Redis, the Stripe emulator).

let db: TestDatabase;
let system: TestSystem;
let app: FastifyInstance;

beforeAll(async () => {
  db = await createTestDatabase();
  system = await startTestSystem(db, { workers: false });
  app = system.receiver;
});
afterAll(async () => {
  await system?.close();
  await db?.drop();
});

const account = (name: string) => `${name}_${randomUUID().slice(0, 8)}`;
const order = (amount = 1_000, currency = 'usd') => ({ amount, currency });

function post(headers: Record<string, string>, body: object, key = randomUUID()) {
  return app.inject({ method: 'POST', url: '/orders', headers: { ...headers, 'idempotency-key': key }, payload: body });
}
const get = (id: string, headers: Record<string, string>) => app.inject({ method: 'GET', url: `/orders/${id}`, headers });
const confirm = (id: string, headers: Record<string, string>) => app.inject({ method: 'POST', url: `/orders/${id}/confirm`, headers });

describe('service keys (the merchant backend)', () => {
  it('act for the account the body names, and need one', async () => {
    const alice = account('alice');
    const created = await post(serviceAuth(), { accountId: alice, ...order() });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ accountId: alice, clientSecret: expect.stringContaining('_secret_') });
    const missing = await post(serviceAuth(), order());
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({ error: 'invalid_request', message: expect.stringContaining('accountId') });
  });

  it('are all accepted during a rotation: made with one key, read and confirmed with the other', async () => {
    const [current, previous] = ORDERS_API_KEYS as [string, string];
    const created = (await post(serviceAuth(previous), { accountId: account('rot'), ...order() })).json();
    const read = await get(created.id, serviceAuth(current));
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({ id: created.id, clientSecret: created.clientSecret });
    expect((await confirm(created.id, serviceAuth(previous))).statusCode).toBe(202);
  });
});

describe("users' JWTs", () => {
  it('act for the account of their sub: accountId may be left out or repeated, never another', async () => {
    const alice = account('alice');
    const auth = await userAuth(alice);
    const key = randomUUID();
    const created = await post(auth, order(), key);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ accountId: alice, clientSecret: expect.stringContaining('_secret_') });
    // Naming the own account is the same request: the same order back.
    const repeated = await post(auth, { accountId: alice, ...order() }, key);
    expect(repeated.statusCode).toBe(200);
    expect(repeated.json().id).toBe(created.json().id);

    const bob = account('bob');
    const forOther = await post(auth, { accountId: bob, ...order() });
    expect(forOther.statusCode).toBe(403);
    expect(forOther.json()).toMatchObject({ error: 'forbidden', message: expect.any(String) });
    expect(await db.prisma.order.count({ where: { accountId: bob } })).toBe(0);
    expect(await db.prisma.account.count({ where: { id: bob } })).toBe(0);
  });

  it("see and confirm their own orders only: another account's order is 404, like an unknown id, and queues nothing", async () => {
    const alice = account('alice');
    const created = (await post(await userAuth(alice), order())).json();
    const own = await get(created.id, await userAuth(alice));
    expect(own.statusCode).toBe(200);
    expect(own.json().clientSecret).toBe(created.clientSecret);

    const bob = await userAuth(account('bob'));
    const unknown = await get(`ord_${'A'.repeat(22)}`, bob);
    for (const response of [
      await get(created.id, bob),
      await confirm(created.id, bob),
      await get(`${created.id}?wait=10&status=awaiting_payment`, bob),
    ]) {
      expect(response.statusCode).toBe(404);
      expect(response.body).not.toContain(created.clientSecret);
      expect(response.body).not.toContain(alice);
      expect(response.json().error).toBe(unknown.json().error);
      expect(response.json().message).toBe(unknown.json().message);
    }
    const queue = testQueue(system.prefix, QUEUES.paymentSync);
    try {
      const queued = await queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed']);
      expect(queued.filter((job) => job.data.paymentIntentId === created.paymentIntentId)).toEqual([]);
    } finally {
      await queue.close();
    }
    expect((await confirm(created.id, await userAuth(alice))).statusCode).toBe(202);
  });

  it("scope Idempotency-Keys to the account: another account's key and body give its own order, never the owner's", async () => {
    const alice = account('alice');
    const bob = account('bob');
    const key = randomUUID();
    const alices = (await post(await userAuth(alice), order(1_000), key)).json();
    // Bob guesses Alice's key and repeats her body: he gets an order of his own, not hers.
    const bobs = await post(await userAuth(bob), order(1_000), key);
    expect(bobs.statusCode).toBe(201);
    expect(bobs.json()).toMatchObject({ accountId: bob });
    expect(bobs.json().id).not.toBe(alices.id);
    expect(bobs.json().clientSecret).not.toBe(alices.clientSecret);
    // Bob's other body under the key is his own conflict; Alice's repeat still gets her order.
    expect((await post(await userAuth(bob), order(2_000), key)).statusCode).toBe(409);
    const again = await post(await userAuth(alice), order(1_000), key);
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(alices.id);
    // Through the service key the same holds: the key belongs to the named account.
    const service = await post(serviceAuth(), { accountId: bob, ...order(1_000) }, key);
    expect(service.json().id).toBe(bobs.json().id);
  });

  it('are refused once expired or before nbf, beyond the clock tolerance (5 s)', async () => {
    const alice = account('alice');
    const expect401 = async (token: string, message: RegExp) => {
      const response = await post({ authorization: `Bearer ${token}` }, order());
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer realm="orders", error="invalid_token"');
      expect(response.json()).toMatchObject({ error: 'invalid_token', message: expect.stringMatching(message) });
    };
    await expect401(await userToken(alice, {}, { expiresIn: -30 }), /expired/);
    await expect401(await userToken(alice, {}, { notBefore: 60 }), /not valid yet/);
    await expect401(await userToken(alice, {}, { expiresIn: undefined }), /exp/);
    // Within the tolerance: a clock a few seconds off is not an attack.
    expect((await post({ authorization: `Bearer ${await userToken(alice, {}, { expiresIn: -2 })}` }, order())).statusCode).toBe(201);
    expect((await post({ authorization: `Bearer ${await userToken(alice, {}, { notBefore: 2 })}` }, order())).statusCode).toBe(201);
  });

  it('are refused from another issuer or for another audience, or forged', async () => {
    const alice = account('alice');
    for (const [token, message] of [
      [await userToken(alice, { iss: 'https://other-issuer.example' }), /issuer/],
      [await userToken(alice, { aud: 'another-api' }), /audience/],
      [await userToken(alice, {}, { secret: `${JWT_SECRET}-not-ours` }), /signature/],
      [new UnsecuredJWT({ sub: alice, exp: Math.floor(Date.now() / 1000) + 60 }).encode(), /algorithm|malformed/],
    ] as const) {
      const response = await get(`ord_${'A'.repeat(22)}`, { authorization: `Bearer ${token}` });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toMatchObject({ error: 'invalid_token', message: expect.stringMatching(message) });
    }
    expect(await db.prisma.account.count({ where: { id: alice } })).toBe(0);
  });
});

describe('missing credentials', () => {
  it('are 401 with a Bearer challenge on every orders route', async () => {
    for (const [method, url] of [
      ['POST', '/orders'],
      ['GET', `/orders/ord_${'A'.repeat(22)}`],
      ['POST', `/orders/ord_${'A'.repeat(22)}/confirm`],
    ] as const) {
      const response = await app.inject({ method, url, headers: { 'idempotency-key': 'k' }, payload: method === 'POST' ? {} : undefined });
      expect(response.statusCode, url).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer realm="orders"');
      expect(response.json()).toMatchObject({ error: 'unauthorized', message: expect.any(String), requestId: expect.any(String) });
    }
  });

  it('close the orders API when nothing is configured (development without setup)', async () => {
    const open = await buildTestReceiver({ databaseUrl: db.url, prefix: system.prefix, ordersAuth: { apiKeys: [] } });
    try {
      const response = await open.inject({
        method: 'POST',
        url: '/orders',
        headers: { ...serviceAuth(), 'idempotency-key': 'k' },
        payload: { accountId: 'acct_open', ...order() },
      });
      expect(response.statusCode).toBe(401);
      expect(response.json().message).toMatch(/ORDERS_API_KEYS/);
    } finally {
      await open.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Key sources and environment, checked on the authenticator (milliseconds per case)

describe('JWT key sources from the environment', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'orders-auth-'));
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (sub = 'acct_keys') => ({ sub, exp: now() + 60 });
  const baseEnv = { ADMIN_TOKEN };

  it('RS256 with a PEM public key: accepts its tokens, refuses HS256 made with the public key as secret and alg none', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const pem = await exportSPKI(publicKey);
    const file = path.join(dir, 'rs256.pem');
    writeFileSync(file, pem);
    for (const env of [{ ORDERS_JWT_PUBLIC_KEY_FILE: file }, { ORDERS_JWT_PUBLIC_KEY: pem.replaceAll('\n', '\\n') }]) {
      const authenticate = createOrdersAuthenticator(ordersAuthFromEnv(loadReceiverEnv({ ...baseEnv, ...env })));
      const good = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
      expect(await authenticate(`Bearer ${good}`)).toEqual({ caller: { kind: 'user', accountId: 'acct_keys' } });
      // The classic key confusion: HMAC with the public key's bytes as the secret.
      const confused = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(pem));
      expect(await authenticate(`Bearer ${confused}`)).toMatchObject({ failure: 'invalid', message: expect.stringMatching(/algorithm/) });
      expect(await authenticate(`Bearer ${new UnsecuredJWT(claims()).encode()}`)).toMatchObject({ failure: 'invalid' });
    }
  });

  it('ES256 from a local JWKS file: keys chosen by kid, an unknown kid or another key refused', async () => {
    const current = await generateKeyPair('ES256');
    const next = await generateKeyPair('ES256');
    const stranger = await generateKeyPair('ES256');
    const file = path.join(dir, 'jwks.json');
    const jwk = async (key: CryptoKey, kid: string) => ({ ...(await exportJWK(key)), kid, alg: 'ES256', use: 'sig' });
    writeFileSync(file, JSON.stringify({ keys: [await jwk(current.publicKey, 'k1'), await jwk(next.publicKey, 'k2')] }));
    const authenticate = createOrdersAuthenticator(
      ordersAuthFromEnv(loadReceiverEnv({ ...baseEnv, ORDERS_JWKS_FILE: file, ORDERS_JWT_ISSUER: 'https://idp.example' })),
    );
    const sign = (key: CryptoKey, kid: string, extra: object = {}) =>
      new SignJWT({ ...claims(), iss: 'https://idp.example', ...extra }).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
    expect(await authenticate(`Bearer ${await sign(current.privateKey, 'k1')}`)).toEqual({
      caller: { kind: 'user', accountId: 'acct_keys' },
    });
    expect(await authenticate(`Bearer ${await sign(next.privateKey, 'k2')}`)).toEqual({ caller: { kind: 'user', accountId: 'acct_keys' } });
    expect(await authenticate(`Bearer ${await sign(stranger.privateKey, 'k1')}`)).toMatchObject({
      failure: 'invalid',
      message: expect.stringMatching(/signature/),
    });
    expect(await authenticate(`Bearer ${await sign(stranger.privateKey, 'k9')}`)).toMatchObject({
      failure: 'invalid',
      message: expect.stringMatching(/key/),
    });
    expect(await authenticate(`Bearer ${await sign(current.privateKey, 'k1', { iss: 'https://evil.example' })}`)).toMatchObject({
      failure: 'invalid',
      message: expect.stringMatching(/issuer/),
    });
  });

  it.each([
    ['two JWT key sources', { ORDERS_JWT_SECRET: JWT_SECRET, ORDERS_JWKS_FILE: '/nonexistent.json' }, /ORDERS_JWKS_FILE/],
    ['a short HS256 secret', { ORDERS_JWT_SECRET: 'short' }, /ORDERS_JWT_SECRET must be at least 32 characters/],
    ['an unreadable key file', { ORDERS_JWT_PUBLIC_KEY_FILE: '/nonexistent.pem' }, /ORDERS_JWT_PUBLIC_KEY_FILE cannot be read/],
    ['a public key that is no PEM', { ORDERS_JWT_PUBLIC_KEY: 'not a key' }, /ORDERS_JWT_PUBLIC_KEY is not a PEM public key/],
    ['a short API key', { ORDERS_API_KEYS: 'short' }, /ORDERS_API_KEYS/],
    [
      'the admin token as an orders key',
      { ORDERS_API_KEYS: `${ORDERS_API_KEYS[0]},${ADMIN_TOKEN}` },
      /ORDERS_API_KEYS must not contain ADMIN_TOKEN/,
    ],
  ])('refuses %s in one line naming the variable', (_name, env, message) => {
    expect(() => loadReceiverEnv({ ...baseEnv, ...env })).toThrow(message);
  });
});

describe('a receiver process without orders credentials', () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'apps/webhook-receiver/src/server.ts'], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        REDIS_URL: TEST_REDIS_URL,
        PORT: '0',
        ORDERS_API_KEYS: '',
        ORDERS_JWT_SECRET: '',
        ...env,
      },
      encoding: 'utf8',
      timeout: 30_000,
    });

  it('refuses to start in production, with one line naming the variables', () => {
    const result = run({ NODE_ENV: 'production', STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_WEBHOOK_SECRET: 'whsec_x' });
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^Invalid environment: ORDERS_API_KEYS \(or one of ORDERS_JWT_SECRET, .*ORDERS_JWKS_FILE\) is required when NODE_ENV=production$/,
    );
  });
});
