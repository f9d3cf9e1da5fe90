import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChaos, type ChaosSummary } from '../scripts/chaos/run.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

// The short chaos run (`npm run chaos -- --short` is the same code): the system as separate
// processes on real PostgreSQL and a Redis of the run's own, under worker SIGKILLs, a Redis crash
// and a PostgreSQL connection kill. runChaos stops every process and Redis it started.
let db: TestDatabase;
let summary: ChaosSummary;
const lines: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('chaos run (short mode)', () => {
  it('credits every payment once and debits every refund and dispute once through kills and restarts', { timeout: 300_000 }, async () => {
    summary = await runChaos({
      orders: 1_000,
      accounts: 100,
      workers: 2,
      workerKills: 2,
      killAllWorkers: 1,
      // A few webhooks never arrive: the final reconciliation pass must find them.
      dropRate: 0.01,
      databaseUrl: db.url,
      // The system's processes yield the CPU to whatever test file runs beside this one.
      niceness: 10,
      quiescenceTimeoutMs: 150_000,
      // Stop, and stop every process the run started, before vitest's own timeout would leave them.
      signal: AbortSignal.timeout(280_000),
      log: (line) => lines.push(line),
    });
    // The run's own account of what went wrong, shown when an assertion fails.
    const context = `${summary.line}\n${lines.join('\n')}`;
    console.log(summary.line);

    expect(summary.lost, context).toBe(0);
    expect(summary.doubled, context).toBe(0);
    expect(summary.balancesOk, context).toBe(true);
    expect(summary.verify.audit.problems, context).toEqual([]);
    expect(summary.verify.wrongStatuses, context).toBe(0);
    expect(summary.verify.wrongEntries, context).toBe(0);
    expect(summary.verify.extraOrders, context).toBe(0);
    expect(summary.unexplainedFailedJobs, context).toBe(0);
    expect(summary.crashes, context).toEqual([]);
    expect(summary.ok, context).toBe(true);

    // The violence really happened.
    expect(summary.kills, context).toBeGreaterThanOrEqual(2);
    expect(summary.workerRestarts, context).toBe(summary.kills);
    expect(summary.redisRestarts, context).toBe(1);
    expect(summary.redisFlushes, context).toBe(1);
    expect(summary.eventJobsFlushed, context).toBeGreaterThan(0);
    expect(summary.reconcileQueued, context).toBeGreaterThanOrEqual(summary.dropped + 1);
    expect(summary.refundReversals, context).toBeGreaterThan(10);
    expect(summary.foreignPayments, context).toBeGreaterThan(100);
    expect(summary.foreignEventsNotOurs, context).toBeGreaterThan(100);
    expect(summary.pgKills, context).toBe(1);
    expect(summary.pgConnectionsKilled, context).toBeGreaterThan(0);
    expect(summary.duplicates, context).toBeGreaterThan(summary.handledEvents * 0.15);
    expect(summary.reconcileQueued, context).toBeGreaterThanOrEqual(summary.dropped);
    // ...and the ledger holds every fact: one top-up per paid order, one entry per refund and dispute.
    expect(summary.verify.ledgerEntries, context).toBe(summary.verify.expectedEntries);
    expect(summary.verify.expectedEntries, context).toBeGreaterThan(900);
  });
});
