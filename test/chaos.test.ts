import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNothingLostOrDoubled, runShortChaos } from './helpers/chaos.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

// The short chaos run (`npm run chaos -- --short` is the same code): the system as separate
// processes on real PostgreSQL and a Redis of the run's own, under worker SIGKILLs, a Redis crash
// and a PostgreSQL connection kill. runChaos stops every process and Redis it started.
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('chaos run (short mode)', () => {
  it('credits every payment once, debits every refund and dispute once and never overspends through kills and restarts', {
    timeout: 300_000,
  }, async () => {
    const { summary, context } = await runShortChaos({
      orders: 1_000,
      accounts: 100,
      workers: 2,
      workerKills: 2,
      killAllWorkers: 1,
      // Spending beside the orders, kept light so the run takes about as long as without it.
      spendingConcurrency: 4,
      databaseUrl: db.url,
      quiescenceTimeoutMs: 150_000,
      abortAfterMs: 280_000,
    });
    expectNothingLostOrDoubled(summary, context);

    // The violence really happened.
    expect(summary.kills, context).toBeGreaterThanOrEqual(2);
    expect(summary.workerRestarts, context).toBe(summary.kills);
    expect(summary.redisRestarts, context).toBe(1);
    expect(summary.redisFlushes, context).toBe(1);
    expect(summary.eventJobsFlushed, context).toBeGreaterThan(0);
    // Drops count deliveries (event × endpoint): a copy dropped on one endpoint may reach the
    // receiver through the other (the upgrade endpoint), so only the flush's losses are certain.
    expect(summary.reconcileQueued, context).toBeGreaterThan(0);
    expect(summary.refundReversals, context).toBeGreaterThan(10);
    expect(summary.foreignPayments, context).toBeGreaterThan(100);
    expect(summary.foreignEventsNotOurs, context).toBeGreaterThan(100);
    expect(summary.pgKills, context).toBe(1);
    expect(summary.pgConnectionsKilled, context).toBeGreaterThan(0);
    expect(summary.duplicates, context).toBeGreaterThan(summary.handledEvents * 0.15);
    expect(summary.verify.expectedEntries, context).toBeGreaterThan(900);
    // Spending happened during the load, retries replayed, and holds went every way.
    expect(summary.spending.debits, context).toBeGreaterThan(50);
    expect(summary.spending.captures, context).toBeGreaterThan(10);
    expect(summary.spending.released, context).toBeGreaterThan(10);
    expect(summary.spending.swept, context).toBeGreaterThan(10);
    expect(summary.spending.refused, context).toBeGreaterThan(0);
    expect(summary.spending.replayedDebits, context).toBeGreaterThan(0);
  });
});
