import { describe, expect, it } from 'vitest';
import { pruneInbox } from '../apps/order-worker/src/operations/inbox-retention.js';
import { createOrderFixture, events } from './helpers/fixtures.js';
import { useLedgerDatabase } from './helpers/ledger.js';

// The inbox stays small: rows older than the retention window go in small batches; the ledger's
// unique keys keep an event that comes back after that from crediting twice.
const ledger = useLedgerDatabase();

describe('inbox retention', () => {
  it('removes done events older than the window in small batches, and keeps recent, held and failed ones', async () => {
    const prisma = ledger.prisma();
    await prisma.$executeRaw`
      INSERT INTO stripe_events (id, type, status, attempts, received_at)
      SELECT 'evt_old_' || g, 'payment_intent.succeeded', (ARRAY['processed', 'duplicate', 'not_ours'])[1 + g % 3]::"StripeEventStatus", 1, now() - interval '40 days'
      FROM generate_series(1, 2500) g`;
    await prisma.$executeRaw`
      INSERT INTO stripe_events (id, type, status, attempts, received_at) VALUES
        ('evt_recent_kept', 'payment_intent.succeeded', 'processed', 1, now() - interval '34 days'),
        ('evt_old_held', 'payment_intent.succeeded', 'held', 1, now() - interval '40 days'),
        ('evt_old_failed', 'payment_intent.succeeded', 'failed', 3, now() - interval '40 days')`;

    const report = await pruneInbox(prisma, { keepDays: 35, batchSize: 1_000 });
    expect(report).toMatchObject({ deleted: 2_500, batches: 3 });
    const left = (
      await prisma.stripeEvent.findMany({
        where: { id: { in: ['evt_recent_kept', 'evt_old_held', 'evt_old_failed'] } },
        select: { id: true },
      })
    ).map((row) => row.id);
    expect(left.sort()).toEqual(['evt_old_failed', 'evt_old_held', 'evt_recent_kept']);
    expect(
      await prisma.stripeEvent.count({ where: { id: { startsWith: 'evt_old_' }, status: { in: ['processed', 'duplicate', 'not_ours'] } } }),
    ).toBe(0);
    // A second run finds nothing more to do.
    expect((await pruneInbox(prisma, { keepDays: 35 })).deleted).toBe(0);
    console.log(`inbox retention: 2,500 rows in ${report.batches} batches, longest DELETE ${report.longestBatchMs.toFixed(1)} ms`);
  });

  it('never credits twice an event whose inbox row is gone: the ledger is the permanent guarantee', async () => {
    const order = await createOrderFixture(ledger.prisma(), { amount: 1_500 });
    const paid = events.paymentIntent('succeeded', order);
    expect((await ledger.apply(paid)).outcomes).toEqual(['applied']);
    await ledger.prisma().$executeRaw`UPDATE stripe_events SET received_at = now() - interval '60 days' WHERE id = ${paid.id}`;
    expect((await pruneInbox(ledger.prisma(), { keepDays: 35 })).deleted).toBe(1);

    // Stripe (or an operator's replay) sends it again, long after.
    const again = await ledger.apply(paid);
    expect(again).toMatchObject({ eventIsNew: true, outcomes: ['already_applied'] });
    expect(await ledger.entriesOf(order)).toEqual(['topup:1500']);
    expect(await ledger.balanceOf(order.accountId)).toBe(1_500);
  });
});
