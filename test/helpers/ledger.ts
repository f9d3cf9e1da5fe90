import type { StripeScope } from '@ledger/shared';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { auditLedger } from '../../apps/order-worker/src/operations/audit.js';
import { createWorkerMetrics } from '../../apps/order-worker/src/metrics.js';
import { processStripeEvent } from '../../apps/order-worker/src/jobs/stripe-event.js';
import { balanceDrift, createTestDatabase, type TestDatabase } from './database.js';
import { createOrderFixture, events, jobOf, type OrderFixture, type StripeEventFixture } from './fixtures.js';

/**
 * One database for a file of ledger tests, with the money invariants checked after every test:
 * each balance equals its ledger, and the audit finds nothing.
 */
export function useLedgerDatabase() {
  let db: TestDatabase | undefined;
  const log = pino({ level: 'silent' });
  const metrics = createWorkerMetrics(new Registry());
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    expect(await balanceDrift(prisma())).toEqual([]);
    expect((await auditLedger(prisma())).problems).toEqual([]);
  });
  afterAll(async () => {
    await db?.drop();
  });
  const prisma = () => {
    if (!db) throw new Error('the database is not created yet');
    return db.prisma;
  };
  const apply = (stripeEvent: StripeEventFixture, scope?: StripeScope) =>
    processStripeEvent({ prisma: prisma(), metrics, ...(scope ? { scope } : {}) }, jobOf(stripeEvent), log);
  return {
    prisma,
    /** The database's URL, for a receiver or a process working on the same data. */
    url: () => {
      if (!db) throw new Error('the database is not created yet');
      return db.url;
    },
    /** Applies an event the way the worker does (the same function, the same transaction). */
    apply,
    /** A new account credited `amount` by a real payment (the worker's own path); its paid order. */
    async fundedAccount(amount: number, currency = 'usd'): Promise<OrderFixture> {
      const order = await createOrderFixture(prisma(), { amount, currency });
      expect((await apply(events.paymentIntent('succeeded', order))).outcomes).toEqual(['applied']);
      return order;
    },
    async balanceOf(accountId: string) {
      return Number((await prisma().account.findUniqueOrThrow({ where: { id: accountId } })).balance);
    },
    async orderOf(order: Pick<OrderFixture, 'id'>) {
      return prisma().order.findUniqueOrThrow({ where: { id: order.id } });
    },
    /** The order's ledger as `type:amount`, oldest first. */
    async entriesOf(order: Pick<OrderFixture, 'id'>) {
      return (await prisma().ledgerEntry.findMany({ where: { orderId: order.id }, orderBy: { id: 'asc' } })).map(
        (entry) => `${entry.entryType}:${entry.amount}`,
      );
    },
  };
}
