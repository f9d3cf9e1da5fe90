import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNothingLostOrDoubled, runShortChaos } from './helpers/chaos.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

// The short chaos run on a Redis Cluster of its own (`npm run chaos -- --redis-cluster --short` is
// the same code, with more orders): 3 masters and 3 replicas, the master serving the queues' slot
// SIGKILLed during the load so that its replica takes over, besides worker SIGKILLs and a
// PostgreSQL connection kill. runChaos stops every process and Redis node it started.
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('chaos run on Redis Cluster (short mode)', () => {
  it('credits every payment once through a master failover, worker kills and a PostgreSQL kill', { timeout: 240_000 }, async () => {
    const { summary, context } = await runShortChaos({
      redisCluster: true,
      orders: 400,
      accounts: 50,
      workers: 2,
      workerKills: 1,
      killAllWorkers: 1,
      databaseUrl: db.url,
      quiescenceTimeoutMs: 120_000,
      abortAfterMs: 220_000,
    });
    expectNothingLostOrDoubled(summary, context);

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
    // Drops count deliveries (event × endpoint); some are covered by the upgrade endpoint's copy.
    expect(summary.reconcileQueued > 0 || summary.dropped === 0, context).toBe(true);
    expect(summary.verify.expectedEntries, context).toBeGreaterThan(300);
  });
});
