import { Writable } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgOrderStatusListener } from '../apps/webhook-receiver/src/plugins/order-status-listener.js';
import { serviceAuth, userAuth } from './helpers/auth.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_PG_URL, withAdmin } from './helpers/env.js';
import { createOrderFixture } from './helpers/fixtures.js';
import { waitUntil } from '@ledger/testkit';
import { buildTestReceiver } from './helpers/receiver.js';
import { tcpProxy } from './helpers/tcp-proxy.js';
import { startTestSystem, type TestSystem } from './helpers/system.js';

// GET /orders/:id?wait=&status=: answered by a status change pushed from PostgreSQL (the
// orders_status_notify trigger, LISTEN in each receiver), or when the wait ends.

let db: TestDatabase;
let system: TestSystem;

beforeAll(async () => {
  db = await createTestDatabase();
  system = await startTestSystem(db);
});
afterAll(async () => {
  await system?.close();
  await db?.drop();
});

interface Answer {
  status: number;
  order: { id: string; status: string };
  ms: number;
}

/** A long-poll over real HTTP, timed. */
async function longPoll(
  baseUrl: string,
  id: string,
  query: string,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<Answer> {
  const started = performance.now();
  const response = await fetch(`${baseUrl}/orders/${id}?${query}`, { headers, signal });
  return { status: response.status, order: (await response.json()) as Answer['order'], ms: performance.now() - started };
}

/** The receiver's `ledger_order_waiters` gauge. */
async function waiters(app: FastifyInstance = system.receiver): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  return Number(/^ledger_order_waiters (\d+)/m.exec(text)?.[1]);
}

const setStatus = (id: string, status: string) =>
  withAdmin((client) => client.query(`UPDATE orders SET status = $1::"OrderStatus" WHERE id = $2`, [status, id]), db.url);

describe('long-poll', () => {
  it('answers as soon as the credit commits, long before the wait ends', async () => {
    const created = (
      await system.receiver.inject({
        method: 'POST',
        url: '/orders',
        headers: { ...serviceAuth(), 'idempotency-key': `lp-${Date.now()}` },
        payload: { accountId: 'acct_lp_credit', amount: 900, currency: 'usd' },
      })
    ).json();
    const auth = await userAuth('acct_lp_credit');
    const before = await waiters();
    const poll = longPoll(system.receiverUrl, created.id, 'wait=25&status=awaiting_payment', auth);
    await waitUntil(async () => (await waiters()) === before + 1, 10_000, 'the request to wait');
    system.emulator.controller.succeedPaymentIntent(created.paymentIntentId);
    const first = await poll;
    expect(first.status).toBe(200);
    expect(first.order.status).not.toBe('awaiting_payment');
    expect(first.ms).toBeLessThan(10_000);
    // The client follows with the status it saw until the order is credited.
    let last = first.order.status;
    while (last !== 'credited') {
      const next = await longPoll(system.receiverUrl, created.id, `wait=25&status=${last}`, auth);
      expect(next.ms).toBeLessThan(10_000);
      last = next.order.status;
    }
  });

  it('wakes on a status change made by any code path (plain SQL here)', async () => {
    const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_sql' });
    const poll = longPoll(system.receiverUrl, order.id, 'wait=25&status=awaiting_payment', await userAuth(order.accountId));
    await waitUntil(async () => (await waiters()) >= 1, 10_000, 'the request to wait');
    await setStatus(order.id, 'processing');
    const answer = await poll;
    expect(answer).toMatchObject({ status: 200, order: { id: order.id, status: 'processing' } });
    expect(answer.ms).toBeLessThan(10_000);
  });

  it('answers with the unchanged order when the wait ends', async () => {
    const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_timeout' });
    const answer = await longPoll(system.receiverUrl, order.id, 'wait=1&status=awaiting_payment', await userAuth(order.accountId));
    expect(answer).toMatchObject({ status: 200, order: { id: order.id, status: 'awaiting_payment' } });
    expect(answer.ms).toBeGreaterThanOrEqual(950);
    expect(answer.ms).toBeLessThan(5_000);
  });

  it('answers at once when the status already differs from the one given, or without wait', async () => {
    const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_now' });
    const auth = await userAuth(order.accountId);
    for (const query of ['wait=25&status=processing', 'status=awaiting_payment', 'wait=0&status=awaiting_payment', '']) {
      const answer = await longPoll(system.receiverUrl, order.id, query, auth);
      expect(answer.order.status, query).toBe('awaiting_payment');
      expect(answer.ms, query).toBeLessThan(5_000);
    }
  });

  it("checks who asks before waiting: another account's order is 404 at once", async () => {
    const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_owner' });
    const answer = await longPoll(system.receiverUrl, order.id, 'wait=25&status=awaiting_payment', await userAuth('acct_lp_intruder'));
    expect(answer.status).toBe(404);
    expect(answer.ms).toBeLessThan(5_000);
  });

  it.each([
    ['wait=31&status=awaiting_payment'],
    ['wait=abc&status=awaiting_payment'],
    ['wait=-1&status=awaiting_payment'],
    ['wait=5&status=paid'],
  ])('refuses %s with 400', async (query) => {
    const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_bad' });
    const answer = await longPoll(system.receiverUrl, order.id, query, serviceAuth());
    expect(answer.status).toBe(400);
    expect(answer.order).toMatchObject({ error: 'invalid_request' });
  });

  it('forgets a waiter whose client went away', async () => {
    const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_gone' });
    const auth = await userAuth(order.accountId);
    const before = await waiters();
    const clients = Array.from({ length: 20 }, () => new AbortController());
    const polls = clients.map((client) =>
      longPoll(system.receiverUrl, order.id, 'wait=25&status=awaiting_payment', auth, client.signal).catch(() => 'aborted'),
    );
    await waitUntil(async () => (await waiters()) === before + 20, 10_000, '20 waiters');
    for (const client of clients) client.abort();
    expect(await Promise.all(polls)).toEqual(clients.map(() => 'aborted'));
    await waitUntil(async () => (await waiters()) === before, 10_000, 'the waiters to be forgotten');
  });

  it('holds one LISTEN connection per receiver process, whatever the number of waiters, and wakes waiters on every receiver', async () => {
    const second = await buildTestReceiver({ databaseUrl: db.url, prefix: system.prefix });
    const secondUrl = await second.listen({ port: 0, host: '127.0.0.1' });
    try {
      const listeners = () =>
        withAdmin(
          async (client) =>
            (
              await client.query(
                `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'webhook-receiver-listener'`,
                [db.name],
              )
            ).rows[0].n as number,
          TEST_PG_URL,
        );
      await waitUntil(async () => (await listeners()) === 2, 10_000, 'both receivers to listen');
      const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_many' });
      const auth = await userAuth(order.accountId);
      const polls = Array.from({ length: 50 }, (_, i) =>
        longPoll(i % 2 ? secondUrl : system.receiverUrl, order.id, 'wait=25&status=awaiting_payment', auth),
      );
      await waitUntil(async () => (await waiters()) + (await waiters(second)) >= 50, 10_000, '50 waiters');
      expect(await listeners()).toBe(2);
      await setStatus(order.id, 'canceled');
      const answers = await Promise.all(polls);
      expect(answers.every((answer) => answer.status === 200 && answer.order.status === 'canceled')).toBe(true);
      expect(Math.max(...answers.map((answer) => answer.ms))).toBeLessThan(10_000);
    } finally {
      await second.close();
    }
  });

  it('listens again after its connection is terminated, and the next change still wakes waiters', async () => {
    const terminated = await withAdmin(
      async (client) =>
        (
          await client.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'webhook-receiver-listener'`,
            [db.name],
          )
        ).rowCount,
      TEST_PG_URL,
    );
    expect(terminated).toBe(1);
    const metrics = async () => (await system.receiver.inject({ method: 'GET', url: '/metrics' })).body;
    await waitUntil(
      async () => /^ledger_order_status_listener_reconnects_total [1-9]/m.test(await metrics()),
      10_000,
      'the listener to notice',
    );
    const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_reconnect' });
    const auth = await userAuth(order.accountId);
    // A change right after the reconnect may fall in the gap: then the post-reconnect re-check answers.
    const poll = longPoll(system.receiverUrl, order.id, 'wait=25&status=awaiting_payment', auth);
    await waitUntil(async () => (await waiters()) >= 1, 10_000, 'the request to wait');
    await setStatus(order.id, 'processing');
    const answer = await poll;
    expect(answer.order.status).toBe('processing');
    expect(answer.ms).toBeLessThan(10_000);
  });

  it('answers waiting requests at shutdown instead of holding it', async () => {
    const app = await buildTestReceiver({ databaseUrl: db.url, prefix: system.prefix });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_shutdown' });
    const poll = longPoll(url, order.id, 'wait=25&status=awaiting_payment', await userAuth(order.accountId));
    await waitUntil(async () => (await waiters(app)) === 1, 10_000, 'the request to wait');
    const closing = performance.now();
    await app.close();
    expect(performance.now() - closing).toBeLessThan(10_000);
    expect(await poll).toMatchObject({ status: 200, order: { status: 'awaiting_payment' } });
  });
});

// ---------------------------------------------------------------------------------------------
// The listener on its own, behind a TCP proxy the test can cut: a change committed while nobody
// listened is not lost.

describe('PgOrderStatusListener', () => {
  it('re-checks every waiter after a reconnect, so a change made while disconnected still ends the wait', async () => {
    const proxy = await tcpProxy(TEST_PG_URL, 5432);
    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write: (chunk, _encoding, done) => {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    const registry = new Registry();
    const reconnects = new Counter({ name: 'reconnects', help: 'x', registers: [registry] });
    const url = new URL(db.url);
    url.host = `127.0.0.1:${proxy.port}`;
    const listener = new PgOrderStatusListener(url.toString(), logger as unknown as FastifyBaseLogger, {
      orderWaiters: new Gauge({ name: 'waiters', help: 'x', registers: [registry] }),
      orderStatusListenerReconnects: reconnects,
    });
    try {
      const listening = () => lines.filter((line) => line.includes('listening for order status changes')).length;
      await waitUntil(async () => listening() === 1, 10_000, 'the listener to connect');
      const order = await createOrderFixture(db.prisma, { accountId: 'acct_lp_gap' });
      const started = performance.now();
      let woken = false;
      const watch = listener.watch(order.id, 20_000, new AbortController().signal);
      void watch.changed.then(() => (woken = true));

      proxy.cut();
      await waitUntil(async () => (await reconnects.get()).values[0]?.value === 1, 10_000, 'the listener to notice the loss');
      await setStatus(order.id, 'processing'); // notified while nobody listens: this notification is gone
      // The wait goes on while the listener cannot reconnect (several retries refused meanwhile)...
      await waitUntil(async () => (await reconnects.get()).values[0]!.value >= 3, 10_000, 'reconnect attempts');
      expect(woken).toBe(false);
      // ...and ends as soon as it listens again, long before its 20 s.
      proxy.restore();
      await watch.changed;
      expect(listening()).toBe(2);
      expect(performance.now() - started).toBeLessThan(15_000);
    } finally {
      await listener.close();
      await proxy.close();
    }
  });
});
