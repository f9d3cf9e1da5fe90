import {
  HANDLED_EVENT_TYPES,
  paymentSyncJobId,
  paymentSyncJobOptions,
  stripeEventJobData,
  stripeEventJobOptions,
  type Logger,
  type PrismaClient,
  type Stripe,
} from '@ledger/shared';
import type { Queue } from 'bullmq';

export interface ReconcileDeps {
  prisma: PrismaClient;
  stripe: Stripe;
  eventsQueue: Queue;
  syncQueue: Queue;
  logger: Logger;
}

export interface ReconcileOptions {
  /** Orders awaiting payment longer than this get their PaymentIntent checked. */
  staleAfterSeconds: number;
  /** Stripe API requests per second at most (Stripe allows 25/s in test mode, 100/s live). */
  maxRequestsPerSecond: number;
  /** How far back the first pass looks (Stripe keeps events for 30 days). */
  initialLookbackSeconds?: number;
  /** Re-read this much before the checkpoint: events of one second can be listed late. */
  overlapSeconds?: number;
  /** Base delay of the enqueued jobs' retries (tests shorten it). */
  jobBackoffMs?: number;
}

export interface ReconcileReport {
  eventsListed: number;
  eventsEnqueued: number;
  staleOrdersChecked: number;
  /** PaymentIntents Stripe reported succeeded in the window that have no top-up yet. */
  uncredited: string[];
  checkpoint: number;
}

const CHECKPOINT = 'reconcile.events.created';
const PAGE_SIZE = 100;

/** Spaces calls so that no more than `perSecond` start in any second. */
function rateLimiter(perSecond: number) {
  const interval = 1000 / perSecond;
  let next = 0;
  return async () => {
    const now = Date.now();
    const wait = Math.max(0, next - now);
    next = Math.max(now, next) + interval;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  };
}

/**
 * Queues an event the inbox lacks under its own id. A job still waiting, delayed or running is
 * left alone (a completed one always has its inbox row: one transaction writes both); a failed one (its order was missing then, or its workers died under it) is retried,
 * since adding under a taken id would do nothing. Returns 1 when a job was queued or retried.
 */
async function requeueEvent(queue: Queue, event: Stripe.Event, backoffMs: number | undefined): Promise<number> {
  const existing = await queue.getJob(event.id);
  if (!existing) {
    await queue.add(event.type, stripeEventJobData(event), stripeEventJobOptions(event.id, backoffMs));
    return 1;
  }
  if ((await existing.getState()) !== 'failed') return 0;
  await existing.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
  return 1;
}

/** The PaymentIntent an event says succeeded, if it says so. */
function succeededPaymentIntent(event: Stripe.Event): string | undefined {
  const object = event.data.object as { id?: string; payment_intent?: unknown; payment_status?: string };
  if (event.type === 'payment_intent.succeeded') return object.id;
  if (
    (event.type === 'checkout.session.completed' || event.type === 'checkout.session.async_payment_succeeded') &&
    object.payment_status === 'paid' &&
    typeof object.payment_intent === 'string'
  ) {
    return object.payment_intent;
  }
  return undefined;
}

/**
 * One reconciliation pass, for when a webhook never arrives (endpoint down, Stripe gave up after
 * 3 days, Redis lost what it held):
 * (a) list Stripe events since the checkpoint and queue those the inbox lacks, under their own
 *     event ids — the same path and dedupe as a webhook;
 * (b) queue a sync for orders awaiting payment longer than `staleAfterSeconds`;
 * (c) report succeeded payments of the window that are not credited yet.
 * https://docs.stripe.com/webhooks/process-undelivered-events
 */
export async function reconcileOnce(deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileReport> {
  const throttle = rateLimiter(options.maxRequestsPerSecond);
  const now = Math.floor(Date.now() / 1000);
  const stored = await deps.prisma.checkpoint.findUnique({ where: { name: CHECKPOINT } });
  const since = stored ? Number(stored.value) - (options.overlapSeconds ?? 300) : now - (options.initialLookbackSeconds ?? 3 * 24 * 3600);

  let eventsListed = 0;
  let eventsEnqueued = 0;
  let newest = stored ? Number(stored.value) : since;
  const succeeded = new Set<string>();
  let startingAfter: string | undefined;
  for (;;) {
    await throttle();
    const page = await deps.stripe.events.list({
      created: { gte: since },
      types: [...HANDLED_EVENT_TYPES],
      limit: PAGE_SIZE,
      ...(startingAfter ? { starting_after: startingAfter } : {}),
    });
    eventsListed += page.data.length;
    const ids = page.data.map((event) => event.id);
    const known = new Set(
      (await deps.prisma.stripeEvent.findMany({ where: { id: { in: ids }, status: { not: 'failed' } }, select: { id: true } })).map((row) => row.id),
    );
    for (const event of page.data.filter((candidate) => !known.has(candidate.id))) {
      eventsEnqueued += await requeueEvent(deps.eventsQueue, event, options.jobBackoffMs);
    }
    for (const event of page.data) {
      newest = Math.max(newest, event.created);
      const paymentIntentId = succeededPaymentIntent(event);
      if (paymentIntentId) succeeded.add(paymentIntentId);
    }
    if (!page.has_more || page.data.length === 0) break;
    startingAfter = page.data[page.data.length - 1]!.id;
  }

  const stale = await deps.prisma.order.findMany({
    where: {
      status: { in: ['awaiting_payment', 'processing'] },
      paymentIntentId: { not: null },
      createdAt: { lt: new Date(Date.now() - options.staleAfterSeconds * 1000), gt: new Date(Date.now() - 30 * 24 * 3600 * 1000) },
    },
    select: { paymentIntentId: true },
    take: 1000,
    orderBy: { createdAt: 'asc' },
  });
  if (stale.length > 0) {
    await deps.syncQueue.addBulk(
      stale.map(({ paymentIntentId }) => {
        const jobId = paymentSyncJobId(paymentIntentId!);
        return { name: 'reconcile', data: { paymentIntentId: paymentIntentId!, reason: 'reconcile' as const }, opts: paymentSyncJobOptions(jobId, options.jobBackoffMs) };
      }),
    );
  }

  const credited = new Set(
    (
      await deps.prisma.ledgerEntry.findMany({
        where: { entryType: 'topup', reference: { in: [...succeeded] } },
        select: { reference: true },
      })
    ).map((row) => row.reference),
  );
  const uncredited = [...succeeded].filter((id) => !credited.has(id));

  await deps.prisma.checkpoint.upsert({
    where: { name: CHECKPOINT },
    create: { name: CHECKPOINT, value: String(newest) },
    update: { value: String(newest) },
  });

  const report = { eventsListed, eventsEnqueued, staleOrdersChecked: stale.length, uncredited, checkpoint: newest };
  deps.logger[uncredited.length > 0 ? 'warn' : 'info'](
    { ...report, uncredited: uncredited.slice(0, 20), uncreditedCount: uncredited.length },
    uncredited.length > 0 ? `reconcile: ${uncredited.length} succeeded payment(s) not credited yet (queued for applying)` : 'reconcile: Stripe and the ledger agree',
  );
  return report;
}
