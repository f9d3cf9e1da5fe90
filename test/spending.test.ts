import { randomUUID } from 'node:crypto';
import { expireHolds } from '@ledger/ledger';
import { waitUntil } from '@ledger/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLedger } from '../apps/order-worker/src/operations/audit.js';
import { serviceAuth, userAuth } from './helpers/auth.js';
import { createOrderFixture, events } from './helpers/fixtures.js';
import { useLedgerDatabase } from './helpers/ledger.js';
import { buildTestReceiver } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// Spending through the receiver's routes, on real PostgreSQL and Redis: every answer of the
// contract's table, the money after it (balance, available, ledger rows), and the invariants
// (balance = Σ ledger, a clean audit) after every test.

const ledger = useLedgerDatabase();
const prefix = uniquePrefix();
let app: FastifyInstance;

beforeAll(async () => {
  app = await buildTestReceiver({ databaseUrl: ledger.url(), prefix });
});
afterAll(async () => {
  await app?.close();
  await deleteKeysWithPrefix(prefix);
});

const service = serviceAuth();
const reference = () => `ref-${randomUUID()}`;

const fundedAccount = ledger.fundedAccount;

const debit = (accountId: string, body: object, headers: Record<string, string> = service) =>
  app.inject({ method: 'POST', url: `/accounts/${accountId}/debits`, headers, payload: body });
const hold = (accountId: string, body: object, headers: Record<string, string> = service) =>
  app.inject({ method: 'POST', url: `/accounts/${accountId}/holds`, headers, payload: body });
const capture = (holdId: string, body?: object) =>
  app.inject({ method: 'POST', url: `/holds/${holdId}/capture`, headers: service, ...(body ? { payload: body } : {}) });
const release = (holdId: string) => app.inject({ method: 'POST', url: `/holds/${holdId}/release`, headers: service });
const balance = async (accountId: string, headers: Record<string, string> = service) =>
  app.inject({ method: 'GET', url: `/accounts/${accountId}/balance`, headers });
const figures = async (accountId: string) => (await balance(accountId)).json() as { balance: number; held: number; available: number };
const spendingEntries = async (accountId: string) =>
  (
    await ledger.prisma().ledgerEntry.findMany({
      where: { accountId, entryType: { in: ['debit', 'hold_capture'] } },
      orderBy: { id: 'asc' },
    })
  ).map((entry) => `${entry.entryType}:${entry.amount}:${entry.reference}`);

describe('debits', () => {
  it('posts once per reference: 201, then 200 with the same debit; another body 409; nothing moved twice', async () => {
    const { accountId } = await fundedAccount(1_000);
    const ref = reference();
    const first = await debit(accountId, { amount: 300, currency: 'usd', reference: ref, description: 'report #1' });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({
      id: expect.stringMatching(/^deb_/),
      accountId,
      amount: 300,
      currency: 'usd',
      reference: ref,
      description: 'report #1',
      status: 'posted',
      createdAt: expect.any(String),
      balance: 700,
      available: 700,
    });
    const again = await debit(accountId, { amount: 300, currency: 'USD', reference: ref, description: 'report #1' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first.json());
    for (const other of [
      { amount: 301, currency: 'usd' },
      { amount: 300, currency: 'eur' },
    ]) {
      const conflict = await debit(accountId, { ...other, reference: ref });
      expect(conflict.statusCode).toBe(409);
      expect(conflict.json()).toMatchObject({ error: 'reference_conflict', message: expect.any(String) });
    }
    expect(await spendingEntries(accountId)).toEqual([`debit:-300:${ref}`]);
    expect(await ledger.balanceOf(accountId)).toBe(700);
  });

  it('refuses more than is available with 422 and writes nothing; exactly the balance goes', async () => {
    const { accountId } = await fundedAccount(500);
    const over = await debit(accountId, { amount: 501, currency: 'usd', reference: reference() });
    expect(over.statusCode).toBe(422);
    expect(over.json()).toMatchObject({ error: 'insufficient_funds', message: expect.stringContaining('500') });
    expect(await spendingEntries(accountId)).toEqual([]);
    expect((await debit(accountId, { amount: 500, currency: 'usd', reference: reference() })).json()).toMatchObject({
      balance: 0,
      available: 0,
    });
    expect((await debit(accountId, { amount: 1, currency: 'usd', reference: reference() })).statusCode).toBe(422);
  });

  it('answers 404 for an unknown account, 400 currency_mismatch, 400 for bad input, 403 for an end user', async () => {
    const { accountId } = await fundedAccount(500);
    const unknown = await debit(`nobody_${randomUUID().slice(0, 8)}`, { amount: 1, currency: 'usd', reference: reference() });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ error: 'unknown_account' });
    const mismatch = await debit(accountId, { amount: 1, currency: 'eur', reference: reference() });
    expect(mismatch.statusCode).toBe(400);
    expect(mismatch.json()).toMatchObject({ error: 'currency_mismatch', message: expect.stringContaining('usd') });
    const bad = [
      { amount: 0, currency: 'usd', reference: reference() },
      { amount: 1.5, currency: 'usd', reference: reference() },
      { amount: -1, currency: 'usd', reference: reference() },
      { amount: '1', currency: 'usd', reference: reference() },
      { amount: 1, currency: 'usd' },
      { amount: 1, currency: 'usd', reference: '' },
      { amount: 1, currency: 'usd', reference: 'x'.repeat(201) },
      { amount: 1, currency: 'usd', reference: 'has space' },
      { amount: 1, currency: 'usd', reference: 'ünïcode' },
      { amount: 1, currency: 'dollars', reference: reference() },
      { amount: 1, currency: 'usd', reference: reference(), extra: true },
    ];
    for (const body of bad) {
      const answer = await debit(accountId, body);
      expect(answer.statusCode, JSON.stringify(body)).toBe(400);
      expect(answer.json()).toMatchObject({ error: 'invalid_request', message: expect.any(String) });
    }
    expect((await debit(accountId, { amount: 1, currency: 'usd', reference: 'A-z_0.9:/x'.padEnd(200, 'z') })).statusCode).toBe(201);
    const user = await debit(accountId, { amount: 1, currency: 'usd', reference: reference() }, await userAuth(accountId));
    expect(user.statusCode).toBe(403);
    expect(user.json()).toMatchObject({ error: 'forbidden' });
    expect((await debit(accountId, { amount: 1, currency: 'usd', reference: reference() }, {})).statusCode).toBe(401);
    expect(await ledger.balanceOf(accountId)).toBe(499);
  });
});

describe('holds', () => {
  it('reserve, capture part (the rest is available at once), capture again moves nothing, other captures and releases 409', async () => {
    const { accountId } = await fundedAccount(1_000);
    const ref = reference();
    const placed = await hold(accountId, { amount: 600, currency: 'usd', reference: ref });
    expect(placed.statusCode).toBe(201);
    const held = placed.json();
    expect(held).toMatchObject({
      id: expect.stringMatching(/^hold_[A-Za-z0-9_-]{20,}$/),
      accountId,
      amount: 600,
      currency: 'usd',
      reference: ref,
      status: 'active',
      capturedAmount: 0,
      balance: 1_000,
      available: 400,
    });
    // Default expiry: 900 s.
    const seconds = (Date.parse(held.expiresAt) - Date.parse(held.createdAt)) / 1000;
    expect(seconds).toBe(900);
    expect(await figures(accountId)).toEqual({ accountId, currency: 'usd', balance: 1_000, held: 600, available: 400 });
    // What is held cannot be debited.
    expect((await debit(accountId, { amount: 401, currency: 'usd', reference: reference() })).statusCode).toBe(422);
    // The same reference again: the same hold.
    const again = await hold(accountId, { amount: 600, currency: 'usd', reference: ref });
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(held.id);
    expect((await hold(accountId, { amount: 601, currency: 'usd', reference: ref })).statusCode).toBe(409);
    // A reference belongs to one operation: a debit cannot reuse the hold's, nor a hold a debit's.
    expect((await debit(accountId, { amount: 600, currency: 'usd', reference: ref })).json()).toMatchObject({
      error: 'reference_conflict',
    });

    const captured = await capture(held.id, { amount: 250 });
    expect(captured.statusCode).toBe(200);
    expect(captured.json()).toMatchObject({ id: held.id, status: 'captured', capturedAmount: 250, balance: 750, available: 750 });
    const twice = await capture(held.id, { amount: 250 });
    expect(twice.statusCode).toBe(200);
    expect(twice.json()).toMatchObject({ status: 'captured', capturedAmount: 250, balance: 750 });
    for (const answer of [await capture(held.id, { amount: 300 }), await capture(held.id), await release(held.id)]) {
      expect(answer.statusCode).toBe(409);
      expect(answer.json()).toMatchObject({ error: 'hold_not_active', message: expect.stringContaining('captured') });
    }
    expect(await spendingEntries(accountId)).toEqual([`hold_capture:-250:${held.id}`]);
    const read = await app.inject({ method: 'GET', url: `/holds/${held.id}`, headers: service });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({ status: 'captured', capturedAmount: 250, available: 750 });
  });

  it('capture all by default; capture more than the hold is 400; release frees the amount, again 200, then capture 409', async () => {
    const { accountId } = await fundedAccount(1_000);
    const whole = (await hold(accountId, { amount: 300, currency: 'usd', reference: reference() })).json();
    expect((await capture(whole.id, { amount: 301 })).json()).toMatchObject({ error: 'exceeds_hold' });
    expect((await capture(whole.id)).json()).toMatchObject({ status: 'captured', capturedAmount: 300, balance: 700 });
    expect((await capture(whole.id)).statusCode).toBe(200);
    expect((await capture(whole.id, { amount: 300 })).statusCode).toBe(200);

    const freed = (await hold(accountId, { amount: 700, currency: 'usd', reference: reference() })).json();
    expect(freed.available).toBe(0);
    const released = await release(freed.id);
    expect(released.statusCode).toBe(200);
    expect(released.json()).toMatchObject({ status: 'released', capturedAmount: 0, balance: 700, available: 700 });
    expect((await release(freed.id)).statusCode).toBe(200);
    expect((await capture(freed.id)).json()).toMatchObject({ error: 'hold_not_active', message: expect.stringContaining('released') });
    expect(await ledger.balanceOf(accountId)).toBe(700);
  });

  it('expire: past expiresAt a hold is available again at once and cannot be captured; the sweeper records it', async () => {
    const { accountId } = await fundedAccount(1_000);
    const short = (await hold(accountId, { amount: 800, currency: 'usd', reference: reference(), expiresInSeconds: 1 })).json();
    expect(short.available).toBe(200);
    await waitUntil(async () => (await figures(accountId)).available === 1_000, 5_000, 'the hold to expire');
    const read = (await app.inject({ method: 'GET', url: `/holds/${short.id}`, headers: service })).json();
    expect(read).toMatchObject({ status: 'expired', capturedAmount: 0 });
    // The row still says active until the sweeper runs; nothing counts it.
    expect((await ledger.prisma().hold.findUniqueOrThrow({ where: { id: short.id } })).status).toBe('active');
    expect((await capture(short.id)).json()).toMatchObject({ error: 'hold_not_active', message: expect.stringContaining('expired') });
    expect((await release(short.id)).statusCode).toBe(409);
    expect((await debit(accountId, { amount: 1_000, currency: 'usd', reference: reference() })).statusCode).toBe(201);

    expect(await expireHolds(ledger.prisma())).toBeGreaterThanOrEqual(1);
    expect((await ledger.prisma().hold.findUniqueOrThrow({ where: { id: short.id } })).status).toBe('expired');
    expect(await spendingEntries(accountId)).toHaveLength(1);
  });

  it('limits expiresInSeconds to 7 days and answers 404 for unknown holds', async () => {
    const { accountId } = await fundedAccount(100);
    for (const expiresInSeconds of [0, -1, 604_801, 1.5]) {
      expect((await hold(accountId, { amount: 1, currency: 'usd', reference: reference(), expiresInSeconds })).statusCode).toBe(400);
    }
    const week = (await hold(accountId, { amount: 1, currency: 'usd', reference: reference(), expiresInSeconds: 604_800 })).json();
    expect(Date.parse(week.expiresAt) - Date.parse(week.createdAt)).toBe(604_800_000);
    for (const answer of [
      await capture('hold_unknown'),
      await release('hold_unknown'),
      await app.inject({ method: 'GET', url: '/holds/hold_unknown', headers: service }),
    ]) {
      expect(answer.statusCode).toBe(404);
      expect(answer.json()).toMatchObject({ error: 'unknown_hold' });
    }
    const user = await userAuth(accountId);
    expect((await hold(accountId, { amount: 1, currency: 'usd', reference: reference() }, user)).statusCode).toBe(403);
    for (const url of [`/holds/${week.id}/capture`, `/holds/${week.id}/release`]) {
      expect((await app.inject({ method: 'POST', url, headers: user })).statusCode).toBe(403);
    }
    expect((await app.inject({ method: 'GET', url: `/holds/${week.id}`, headers: user })).statusCode).toBe(403);
  });
});

describe('rate limits', () => {
  it('spending has its own per-account budget: over it 429 with Retry-After, nothing written; other accounts unaffected', async () => {
    const limitedPrefix = uniquePrefix();
    const limited = await buildTestReceiver({
      databaseUrl: ledger.url(),
      prefix: limitedPrefix,
      rateLimits: { windowSeconds: 60, perAccount: 1, perIp: 1, spendingPerAccount: 2 },
    });
    try {
      const { accountId } = await fundedAccount(1_000);
      const other = await fundedAccount(1_000);
      const spend = (account: string) =>
        limited.inject({
          method: 'POST',
          url: `/accounts/${account}/debits`,
          headers: service,
          payload: { amount: 10, currency: 'usd', reference: reference() },
        });
      expect((await spend(accountId)).statusCode).toBe(201);
      expect((await spend(accountId)).statusCode).toBe(201);
      const over = await spend(accountId);
      expect(over.statusCode).toBe(429);
      expect(over.json()).toMatchObject({ error: 'rate_limited' });
      expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
      expect((await spend(other.accountId)).statusCode).toBe(201);
      expect(await spendingEntries(accountId)).toHaveLength(2);
    } finally {
      await limited.close();
      await deleteKeysWithPrefix(limitedPrefix);
    }
  });
});

describe('balances', () => {
  it('a service key reads any account; a user only their own (another account: 404)', async () => {
    const { accountId } = await fundedAccount(900);
    const other = await fundedAccount(100);
    expect((await balance(accountId, await userAuth(accountId))).json()).toEqual({
      accountId,
      currency: 'usd',
      balance: 900,
      held: 0,
      available: 900,
    });
    const foreign = await balance(other.accountId, await userAuth(accountId));
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json()).toMatchObject({ error: 'unknown_account' });
    expect((await balance(`nobody_${randomUUID().slice(0, 8)}`)).statusCode).toBe(404);
  });
});

describe('debt', () => {
  it('a refund of spent credit is debt, shown and listed by the audit; nothing is spent until a new top-up repays it', async () => {
    const first = await fundedAccount(1_000);
    const { accountId } = first;
    expect((await debit(accountId, { amount: 800, currency: 'usd', reference: reference() })).statusCode).toBe(201);
    expect(
      (await ledger.apply(events.refund('refund.created', first, { id: `re_${randomUUID().replaceAll('-', '')}`, amount: 1_000 })))
        .outcomes,
    ).toEqual(['applied']);
    expect(await figures(accountId)).toMatchObject({ balance: -800, available: -800 });
    const refused = await debit(accountId, { amount: 1, currency: 'usd', reference: reference() });
    expect(refused.statusCode).toBe(422);
    expect(refused.json().message).toContain('debt');
    expect((await hold(accountId, { amount: 1, currency: 'usd', reference: reference() })).statusCode).toBe(422);
    const audit = await auditLedger(ledger.prisma());
    expect(audit.debts).toContainEqual({ accountId, currency: 'usd', balance: -800 });

    const second = await createOrderFixture(ledger.prisma(), { accountId, amount: 1_000 });
    await ledger.apply(events.paymentIntent('succeeded', second));
    expect(await figures(accountId)).toMatchObject({ balance: 200, available: 200 });
    expect((await debit(accountId, { amount: 200, currency: 'usd', reference: reference() })).statusCode).toBe(201);
    expect((await auditLedger(ledger.prisma())).debts.some((debt) => debt.accountId === accountId)).toBe(false);
  });
});
