import { randomUUID } from 'node:crypto';
import { QUEUES } from '@ledger/shared';
import { closeAll } from '@ledger/testkit';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { afterEach, beforeEach, expect } from 'vitest';
import { reconcileOnce, type ReconcileOptions } from '../../apps/order-worker/src/operations/reconcile.js';
import { serviceAuth } from './auth.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { TEST_REDIS_URL } from './env.js';
import { startTestSystem, type TestSystem } from './system.js';

/** What a reconciliation test works with; `start` builds the system with the options it needs. */
export interface ReconcileHarness {
  readonly db: TestDatabase;
  readonly system: TestSystem;
  readonly queues: { eventsQueue: Queue; syncQueue: Queue };
  start(options: Parameters<typeof startTestSystem>[1]): Promise<void>;
  reconcile(options?: Partial<ReconcileOptions>): ReturnType<typeof reconcileOnce>;
  /** Creates `count` orders through the API (amounts from `amount` up, one new account each). */
  createOrders(count: number, amount?: number): Promise<{ id: string; accountId: string; paymentIntentId: string; amount: number }[]>;
  /** True when no event or sync job is waiting, running or delayed. */
  drained(): Promise<boolean>;
}

/**
 * A fresh database per test, the whole system on it (emulator, receiver, optionally workers) and
 * producers on its queues; everything is closed after each test.
 */
export function useReconcileHarness(): ReconcileHarness {
  let db: TestDatabase | undefined;
  let system: TestSystem | undefined;
  let queues: ReconcileHarness['queues'] | undefined;
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    const [open, running, database] = [queues, system, db];
    [queues, system, db] = [undefined, undefined, undefined];
    await closeAll('closing the reconcile harness', [
      () => open?.eventsQueue.close(),
      () => open?.syncQueue.close(),
      () => running?.close(),
      () => database?.drop(),
    ]);
  });
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not started`);
    return value;
  };
  return {
    get db() {
      return need(db, 'the database');
    },
    get system() {
      return need(system, 'the system');
    },
    get queues() {
      return need(queues, 'the queues');
    },
    async start(options) {
      system = await startTestSystem(need(db, 'the database'), options);
      const connection = { connection: { url: TEST_REDIS_URL }, prefix: system.prefix };
      queues = { eventsQueue: new Queue(QUEUES.stripeEvents, connection), syncQueue: new Queue(QUEUES.paymentSync, connection) };
    },
    reconcile(options = {}) {
      return reconcileOnce(
        { prisma: this.db.prisma, stripe: this.system.stripe, ...this.queues, logger: pino({ level: 'silent' }) },
        { staleAfterSeconds: 3600, maxRequestsPerSecond: 100, jobBackoffMs: 5, ...options },
      );
    },
    async createOrders(count, amount = 500) {
      const orders = [];
      for (let i = 0; i < count; i++) {
        const response = await this.system.receiver.inject({
          method: 'POST',
          url: '/orders',
          headers: { ...serviceAuth(), 'idempotency-key': randomUUID() },
          payload: { accountId: `acct_${randomUUID().slice(0, 8)}`, amount: amount + i, currency: 'usd' },
        });
        expect(response.statusCode).toBe(201);
        orders.push(response.json());
      }
      return orders;
    },
    async drained() {
      // Jobs, not list entries: after Redis lost keys a list can keep an id whose job is gone.
      const pending = await Promise.all(
        [this.queues.eventsQueue, this.queues.syncQueue].map((queue) => queue.getJobs(['waiting', 'active', 'delayed', 'prioritized'])),
      );
      return pending.every((jobs) => jobs.filter(Boolean).length === 0);
    },
  };
}
