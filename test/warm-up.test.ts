import { createLogger, createWorkerConnection, poolOf } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warmUpWorker } from '../apps/order-worker/src/warm-up.js';
import { warmUpReceiver } from '../apps/webhook-receiver/src/warm-up.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { events, newOrderFixture } from './helpers/fixtures.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { captureLogs } from './helpers/logs.js';
import { buildTestReceiver, signatureHeader, WEBHOOK_SECRETS } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// Warm before ready (issue 26): each process runs its hot path before it takes real traffic, and
// leaves nothing behind that an operator, a counter or the ledger could mistake for a payment.

/** Keys under `prefix` other than the queues' own `meta` (BullMQ writes it when a queue connects). */
async function keysUnder(prefix: string): Promise<string[]> {
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 3 });
  try {
    return (await redis.keys(`${prefix}:*`)).filter((key) => !/^[^:]+:[a-z-]+:meta$/.test(key));
  } finally {
    redis.disconnect();
  }
}

const rowCounts = async (db: TestDatabase) => {
  const [row] = await db.prisma.$queryRaw<{ ledger: bigint; inbox: bigint; orders: bigint }[]>`
    SELECT (SELECT count(*) FROM ledger_entries) AS ledger, (SELECT count(*) FROM stripe_events) AS inbox,
           (SELECT count(*) FROM orders) AS orders`;
  return row;
};

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('receiver warm-up', () => {
  let app: FastifyInstance | undefined;
  const prefix = uniquePrefix();
  afterAll(async () => {
    await app?.close();
    await deleteKeysWithPrefix(prefix);
  });

  it('sends signed deliveries through the real route, then leaves no job, key, count or log line behind; real deliveries go to the real queue', async () => {
    const logs = captureLogs();
    app = await buildTestReceiver({ databaseUrl: db.url, prefix, logger: createLogger('webhook-receiver', 'info', logs.stream) });
    const realQueue = app.queues.stripeEvents;
    const warmUp = await warmUpReceiver(app, {
      events: 300,
      webhookSecret: WEBHOOK_SECRETS[0]!,
      scope: { livemode: false, connectedAccounts: new Set() },
    });
    expect(warmUp.events).toBe(300);
    expect(warmUp.ms).toBeGreaterThan(0);
    expect(app.queues.stripeEvents).toBe(realQueue);
    // Nothing of the warm-up stays in Redis (its own queue removed, the real one never touched).
    expect(await keysUnder(prefix)).toEqual([]);
    const metrics = await app.metrics.registry.metrics();
    expect(metrics).toMatch(/^ledger_webhooks_received_total 0$/m);
    expect(metrics).toMatch(/^ledger_webhooks_verified_total 0$/m);
    expect(metrics).not.toMatch(/^ledger_webhooks_duplicate_total [1-9]/m);
    expect(await rowCounts(db)).toEqual({ ledger: 0n, inbox: 0n, orders: 0n });

    // The route works as before on the real queue.
    const event = events.paymentIntent('succeeded', newOrderFixture());
    const payload = JSON.stringify(event);
    const response = await app.inject({
      method: 'POST',
      url: '/webhooks/stripe',
      headers: { 'content-type': 'application/json', 'stripe-signature': signatureHeader(payload) },
      payload,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ received: true });
    expect(await realQueue.getJob(event.id)).toBeDefined();
    expect(await app.metrics.registry.metrics()).toMatch(/^ledger_webhooks_received_total 1$/m);
    // Not one line about a warm-up delivery; the real one logged as before, at info.
    expect(logs.lines.filter((line) => line.includes('warmup'))).toEqual([]);
    const queued = logs.lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'event queued');
    expect(queued).toEqual([
      expect.objectContaining({ level: 30, eventId: event.id, eventType: 'payment_intent.succeeded', duplicate: false }),
    ]);
  });

  it('fails, and restores the real queue, when the route refuses its deliveries (a secret the route does not accept)', async () => {
    const otherPrefix = uniquePrefix();
    const other = await buildTestReceiver({ databaseUrl: db.url, prefix: otherPrefix });
    try {
      const realQueue = other.queues.stripeEvents;
      await expect(
        warmUpReceiver(other, {
          events: 5,
          webhookSecret: 'whsec_not_configured',
          scope: { livemode: false, connectedAccounts: new Set() },
        }),
      ).rejects.toThrow(/answered 400/);
      expect(other.queues.stripeEvents).toBe(realQueue);
      // Every sender stopped before the real queue came back: none of them reached it.
      expect(await realQueue.getJobCounts()).toMatchObject({ waiting: 0, active: 0, completed: 0, failed: 0 });
      expect(await keysUnder(otherPrefix)).toEqual([]);
    } finally {
      await other.close();
      await deleteKeysWithPrefix(otherPrefix);
    }
  });
});

describe('worker warm-up', () => {
  const prefix = uniquePrefix();
  const connection = createWorkerConnection(TEST_REDIS_URL);
  afterAll(async () => {
    connection.disconnect();
    await deleteKeysWithPrefix(prefix);
  });

  it('runs jobs through BullMQ, the facts and the credit statement on every connection, and writes nothing', async () => {
    const before = await rowCounts(db);
    const sequenceBefore = await db.prisma.$queryRaw<
      { last_value: bigint; is_called: boolean }[]
    >`SELECT last_value, is_called FROM ledger_entries_id_seq`;
    const warmUp = await warmUpWorker({
      prisma: db.prisma,
      connection,
      prefix,
      events: 200,
      concurrency: 16,
      batchSize: 8,
      batchWaitMs: 2,
      poolSize: 4,
    });
    expect(warmUp.events).toBe(200);
    // Every connection of the pool was opened (the credit statement prepared on each).
    expect(poolOf(db.prisma)?.totalCount).toBeGreaterThanOrEqual(4);
    expect(await rowCounts(db)).toEqual(before);
    // Not even a sequence value is taken: the bench and operators read ledger ids as a gapless watermark.
    expect(await db.prisma.$queryRaw`SELECT last_value, is_called FROM ledger_entries_id_seq`).toEqual(sequenceBefore);
    expect(await keysUnder(prefix)).toEqual([]);
  });

  it('gives up after its time bound (Redis flushed meanwhile loses its jobs), stops its BullMQ worker and removes its queue', async () => {
    const started = Date.now();
    await expect(
      warmUpWorker({
        prisma: db.prisma,
        connection,
        prefix,
        events: 2_000,
        concurrency: 4,
        batchSize: 8,
        batchWaitMs: 2,
        poolSize: 2,
        timeoutMs: 50,
      }),
    ).rejects.toThrow(/not done after 50 ms/);
    // Abandoned, not awaited: far sooner than 2,000 jobs take at this concurrency.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await keysUnder(prefix)).toEqual([]);
  });
});
