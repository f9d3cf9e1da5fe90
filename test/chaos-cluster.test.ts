import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChaos, type ChaosSummary } from '../scripts/chaos/run.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

// The short chaos run on a Redis Cluster of its own (`npm run chaos -- --redis-cluster --short` is
// the same code, with more orders): 3 masters and 3 replicas, the master serving the queues' slot
// SIGKILLed during the load so that its replica takes over, besides worker SIGKILLs and a
// PostgreSQL connection kill. runChaos stops every process and Redis node it started.
let db: TestDatabase;
let summary: ChaosSummary;
const lines: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('chaos run on Redis Cluster (short mode)', () => {
  it('credits every payment once through a master failover, worker kills and a PostgreSQL kill', { timeout: 240_000 }, async () => {
    summary = await runChaos({
      redisCluster: true,
      orders: 400,
      accounts: 50,
      workers: 2,
      workerKills: 1,
      killAllWorkers: 1,
      // A few webhooks never arrive: the final reconciliation pass must find them.
      dropRate: 0.01,
      databaseUrl: db.url,
      // The system's processes yield the CPU to whatever test file runs beside this one.
      niceness: 10,
      quiescenceTimeoutMs: 120_000,
      // Stop, and stop every process the run started, before vitest's own timeout would leave them.
      signal: AbortSignal.timeout(220_000),
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

    // The failover really happened: a master SIGKILLed, its replica serving the slot afterwards.
    expect(summary.redis, context).toBe('cluster');
    expect(summary.redisFailovers, context).toBe(1);
    expect(summary.failoverMs, context).toHaveLength(1);
    expect(summary.failoverMs[0], context).toBeGreaterThan(0);
    expect(summary.line, context).toMatch(/redis cluster failovers 1 \(/);
    // ...and the rest of the violence too; no single-server restart or flush on a cluster.
    expect(summary.kills, context).toBeGreaterThanOrEqual(1);
    expect(summary.workerRestarts, context).toBe(summary.kills);
    expect(summary.redisRestarts, context).toBe(0);
    expect(summary.redisFlushes, context).toBe(0);
    expect(summary.pgKills, context).toBe(1);
    expect(summary.reconcileQueued, context).toBeGreaterThanOrEqual(summary.dropped);
    // The ledger holds every fact: one top-up per paid order, one entry per refund and dispute.
    expect(summary.verify.ledgerEntries, context).toBe(summary.verify.expectedEntries);
    expect(summary.verify.expectedEntries, context).toBeGreaterThan(300);
  });
});
