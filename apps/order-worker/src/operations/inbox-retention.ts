import type { PrismaClient } from '@ledger/shared';

export interface InboxRetentionOptions {
  /** Inbox rows older than this many days go (Stripe resends events for up to 30 days). */
  keepDays: number;
  /** Rows per DELETE: each is a short statement, so credits never wait behind a long one. */
  batchSize?: number;
  /** DELETE statements per run at most; the next run goes on where this one stopped. */
  maxBatches?: number;
}

export interface InboxRetentionReport {
  deleted: number;
  batches: number;
  /** The longest single DELETE, in milliseconds. */
  longestBatchMs: number;
}

/**
 * Removes inbox rows older than the retention window, in small batches. Only events that are done
 * (processed, duplicate, not ours) go; held and failed ones stay until someone acts. The inbox only
 * saves work: an event older than the window that comes again is still credited at most once,
 * because the ledger's unique keys are permanent. Idempotent, and safe beside running workers
 * (SKIP LOCKED: a row a worker holds is left for the next run).
 */
export async function pruneInbox(prisma: PrismaClient, options: InboxRetentionOptions): Promise<InboxRetentionReport> {
  const batchSize = options.batchSize ?? 1_000;
  const maxBatches = options.maxBatches ?? 100;
  let deleted = 0;
  let batches = 0;
  let longestBatchMs = 0;
  while (batches < maxBatches) {
    const started = performance.now();
    const count = await prisma.$executeRaw`
      DELETE FROM stripe_events WHERE id IN (
        SELECT id FROM stripe_events
        WHERE received_at < now() - make_interval(days => ${options.keepDays}::int)
          AND status IN ('processed', 'duplicate', 'not_ours')
        LIMIT ${batchSize}
        FOR UPDATE SKIP LOCKED)`;
    longestBatchMs = Math.max(longestBatchMs, performance.now() - started);
    batches += 1;
    deleted += count;
    if (count < batchSize) break;
  }
  return { deleted, batches, longestBatchMs };
}
