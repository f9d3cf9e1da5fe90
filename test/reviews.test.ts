import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '@ledger/testkit';
import { createWorkerMetrics } from '../apps/order-worker/src/metrics.js';
import { processStripeEvent } from '../apps/order-worker/src/jobs/stripe-event.js';
import { balanceDrift, createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { createOrderFixture, events, jobOf, type OrderFixture } from './helpers/fixtures.js';
import { ADMIN_TOKEN, buildTestReceiver } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';
import { startTestWorkers } from './helpers/workers.js';

// Operators settle orders under review: `npm run review` and the admin routes, on real services.
let db: TestDatabase;
let app: FastifyInstance;
let workers: ReturnType<typeof startTestWorkers>;
const prefix = uniquePrefix();
const metrics = createWorkerMetrics(new Registry());
const log = pino({ level: 'silent' });

beforeAll(async () => {
  db = await createTestDatabase();
  app = await buildTestReceiver({ databaseUrl: db.url, prefix });
  workers = startTestWorkers({ prisma: db.prisma, prefix });
});
afterAll(async () => {
  await app?.close();
  await workers?.close();
  await deleteKeysWithPrefix(prefix);
  await db?.drop();
});

/** `npm run review` from source against this test's database and queues. */
const review = (...args: string[]) =>
  runCli('review', args, {
    env: { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix, STRIPE_API_BASE: 'http://127.0.0.1:9' },
  });

/** An order paid 10 less than it asked for: the payment is held and the order is under review. */
async function shortPaidOrder(): Promise<OrderFixture> {
  const order = await createOrderFixture(db.prisma, { amount: 1_000 });
  await processStripeEvent({ prisma: db.prisma, metrics }, jobOf(events.paymentIntent('succeeded', order, { amount: 990 })), log);
  return order;
}

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('npm run review', () => {
  it('lists and shows orders under review, then resolves one exactly once', async () => {
    const order = await shortPaidOrder();
    const list = await review('list');
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(order.id);
    expect(list.stdout).toMatch(/held 1 \(990\)/);

    const show = await review('show', order.id);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({
      order: { id: order.id, status: 'needs_review' },
      heldFacts: [{ entryType: 'topup', amount: 990 }],
    });

    const resolved = await review('resolve', order.id, '--credit', '--note', 'credit what the customer paid', '--by', 'alice');
    expect(resolved.code, resolved.stderr).toBe(0);
    expect(resolved.stdout).toMatch(/resolved .* as rsl_\S+: adjustment 990, 1 held fact\(s\) settled; status credited/);
    const again = await review('resolve', order.id, '--credit', '--note', 'again');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('is not under review');
    const entries = await db.prisma.ledgerEntry.findMany({ where: { orderId: order.id } });
    expect(entries.map((entry) => [entry.entryType, entry.amount])).toEqual([['adjustment', 990]]);
    expect(await balanceDrift(db.prisma)).toEqual([]);
  });

  it('refuses bad usage with one line and exit code 64', async () => {
    for (const args of [
      ['resolve', 'ord_x'],
      ['resolve', 'ord_x', '--credit', '--dismiss', '--note', 'n'],
      ['resolve', 'ord_x', '--credit'],
      ['frobnicate'],
      ['list', '--bogus'],
    ]) {
      const result = await review(...args);
      expect(result.code, args.join(' ')).toBe(64);
      expect(result.stderr).toContain('usage: npm run review');
    }
    const help = await review('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('resolve <order id> --credit');
  });

  it('settles duplicate top-ups from before the rule: the first stays, the others become adjustments, the balance holds', async () => {
    const order = await createOrderFixture(db.prisma, { amount: 300 });
    // As the previous release could leave it: two top-ups for one order (the index forbids it now),
    // and a ledger not append-only yet (the upgrade recipe resolves duplicates before that migration).
    await db.prisma.$executeRawUnsafe(`DROP INDEX ledger_entries_one_topup_per_order`);
    await db.prisma.$executeRawUnsafe(`ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update_or_delete`);
    try {
      await db.prisma.$executeRaw`INSERT INTO ledger_entries (account_id, entry_type, amount, currency, reference, order_id) VALUES
        (${order.accountId}, 'topup', 300, 'usd', ${order.paymentIntentId}, ${order.id}),
        (${order.accountId}, 'topup', 300, 'usd', 'pi_dup_second_payment', ${order.id})`;
      await db.prisma.$executeRaw`UPDATE accounts SET balance = balance + 600 WHERE id = ${order.accountId}`;
      await db.prisma.$executeRaw`UPDATE orders SET status = 'credited' WHERE id = ${order.id}`;

      const listed = await review('duplicates');
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(`${order.id}  ${order.accountId}  ${order.paymentIntentId} 300, pi_dup_second_payment 300`);
      const settled = await review('duplicates', '--resolve', '--note', 'paid twice before the upgrade');
      expect(settled.code, settled.stderr).toBe(0);
      expect(settled.stdout).toContain('1 later top-up(s) became adjustments');
      expect((await review('duplicates', '--resolve', '--note', 'again')).stdout).toContain('no order has more than one top-up');

      const entries = await db.prisma.ledgerEntry.findMany({ where: { orderId: order.id }, orderBy: { id: 'asc' } });
      expect(entries.map((entry) => [entry.entryType, entry.amount])).toEqual([
        ['topup', 300],
        ['adjustment', 300],
      ]);
      expect(entries[1]!.reference).toMatch(/^rsl_dup_/);
      expect(await balanceDrift(db.prisma)).toEqual([]);
      expect((await db.prisma.order.findUniqueOrThrow({ where: { id: order.id } })).status).toBe('needs_review');
    } finally {
      await db.prisma.$executeRawUnsafe(`ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_update_or_delete`);
      await db.prisma.$executeRawUnsafe(
        `CREATE UNIQUE INDEX ledger_entries_one_topup_per_order ON ledger_entries(order_id) WHERE entry_type = 'topup'`,
      );
    }
  });
});

describe('admin review routes', () => {
  it('require the admin token', async () => {
    for (const [method, url] of [
      ['GET', '/admin/reviews'],
      ['POST', '/admin/reviews/ord_x/resolve'],
    ] as const) {
      const response = await app.inject({ method, url, payload: method === 'POST' ? { decision: 'dismiss', note: 'n' } : undefined });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toMatchObject({ error: 'unauthorized' });
    }
  });

  it('list, show and resolve through the worker, exactly once', async () => {
    const order = await shortPaidOrder();
    const list = await app.inject({ method: 'GET', url: '/admin/reviews', headers: admin });
    expect(list.statusCode).toBe(200);
    expect(list.json()).toEqual(expect.arrayContaining([expect.objectContaining({ orderId: order.id, heldFacts: 1, heldAmount: 990 })]));

    const resolve = () =>
      app.inject({
        method: 'POST',
        url: `/admin/reviews/${order.id}/resolve`,
        headers: admin,
        payload: { decision: 'dismiss', note: 'refunded the short payment', resolvedBy: 'bob' },
      });
    const [first, second] = await Promise.all([resolve(), resolve()]);
    expect([first.statusCode, second.statusCode].sort()).toEqual([200, 409]);
    const resolved = [first, second].find((response) => response.statusCode === 200)!;
    expect(resolved.json()).toMatchObject({ outcome: 'resolved', amount: 0, status: 'awaiting_payment' });
    const shown = await app.inject({ method: 'GET', url: `/admin/reviews/${order.id}`, headers: admin });
    expect(shown.json()).toMatchObject({ resolutions: [{ decision: 'dismiss', resolvedBy: 'bob', note: 'refunded the short payment' }] });
    expect(await db.prisma.ledgerEntry.count({ where: { orderId: order.id } })).toBe(0);
  });

  it('answer 400 for a bad body and 404 for an unknown order', async () => {
    const bad = await app.inject({ method: 'POST', url: '/admin/reviews/ord_x/resolve', headers: admin, payload: { decision: 'refund' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'invalid_request' });
    const unknown = await app.inject({
      method: 'POST',
      url: '/admin/reviews/ord_unknown/resolve',
      headers: admin,
      payload: { decision: 'dismiss', note: 'n' },
    });
    expect(unknown.statusCode).toBe(404);
  });
});
