import {
  HANDLED_EVENT_TYPES,
  jobOptions,
  paymentSyncJobId,
  stripeEventJobData,
  type JobQueue,
  type Logger,
  type PrismaClient,
  type Stripe,
} from '@ledger/shared';

export interface ReconcileDeps {
  prisma: PrismaClient;
  stripe: Stripe;
  eventsQueue: JobQueue<'stripeEvents'>;
  syncQueue: JobQueue<'paymentSync'>;
  logger: Logger;
}

export interface ReconcileOptions {
  /** Orders awaiting payment longer than this get their PaymentIntent checked (then with a growing back-off). */
  staleAfterSeconds: number;
  /** Stripe API requests per second at most (Stripe allows 25/s in test mode, 100/s live). */
  maxRequestsPerSecond: number;
  /** An order unpaid this long has its PaymentIntent canceled and ends as `expired` (ORDER_TTL). */
  orderTtlSeconds?: number;
  /** How far back the first pass looks (Stripe keeps events for 30 days). */
  initialLookbackSeconds?: number;
  /** Re-read this much before the checkpoint: events of one second can be listed late. */
  overlapSeconds?: number;
  /** Unpaid orders looked at per pass. */
  orderBatchSize?: number;
  /** Base delay of the enqueued jobs' retries (tests shorten it). */
  jobBackoffMs?: number;
  /**
   * List only the events created in this window (unix seconds, inclusive) and leave the
   * checkpoint where it is: a recovery pass Stripe asked for, beside the regular ones.
   */
  window?: { since: number; until: number } | undefined;
}

/** What Stripe reported succeeded in the listed window, by what became of it here. */
export interface SucceededPayments {
  credited: number;
  /** Held for an operator (npm run review). */
  held: string[];
  /** Another integration's or deployment's PaymentIntents: acknowledged, never credited. */
  notOurs: number;
  /** Not credited yet: their events are queued (by this pass or before) and a worker applies them. */
  uncredited: string[];
}

export interface ReconcileReport {
  eventsListed: number;
  /** Events the inbox lacked that this pass queued (or whose failed job it retried). */
  eventsEnqueued: number;
  /** Events the inbox lacked whose job was still waiting or running. */
  eventsInFlight: number;
  staleOrdersChecked: number;
  ordersExpiring: number;
  /** Orders without a PaymentIntent that reached ORDER_TTL and ended here. */
  ordersExpired: number;
  /** PaymentIntents Stripe reported succeeded in the window that have no top-up yet. */
  uncredited: string[];
  payments: SucceededPayments;
  /** Unix seconds: the next pass lists events from here (minus the overlap). */
  checkpoint: number;
}

const CHECKPOINT = 'reconcile.events.created';
const PAGE_SIZE = 100;
/** Stripe lists events of the last 30 days only. https://docs.stripe.com/api/events */
const STRIPE_EVENT_WINDOW_SECONDS = 30 * 24 * 3600;
/** The back-off between checks of one unpaid order stops growing here. */
const MAX_CHECK_INTERVAL_SECONDS = 6 * 3600;

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
 * left alone; a failed one (its workers died under it, PostgreSQL refused it) is retried, since
 * adding under a taken id would do nothing. A completed job whose event the inbox lacks, or a job
 * Redis half lost (its data left, no longer in any list: `unknown`), is replaced. Returns whether a
 * job was queued.
 */
async function requeueEvent(queue: JobQueue<'stripeEvents'>, event: Stripe.Event, backoffMs: number | undefined): Promise<boolean> {
  const existing = await queue.getJob(event.id);
  if (existing) {
    const state = await existing.getState();
    if (state !== 'failed' && state !== 'completed' && state !== 'unknown') return false;
    try {
      // Atomic in Redis: only a job still in that state moves back to waiting.
      if (state !== 'unknown') {
        await existing.retry(state, { resetAttemptsMade: true, resetAttemptsStarted: true });
        return true;
      }
      await existing.remove();
    } catch {
      // It moved meanwhile (another pass, or a worker, has it now): it is in flight.
      return false;
    }
  }
  await queue.add(event.type, stripeEventJobData(event), jobOptions('stripeEvents', event.id, backoffMs));
  return true;
}

/** The PaymentIntent an event says succeeded, if it says so. */
function succeededPaymentIntent(event: Stripe.Event): string | undefined {
  const object = event.data.object as { id?: string; payment_intent?: unknown; payment_status?: string; status?: string };
  if (event.type === 'payment_intent.succeeded' && object.status === 'succeeded') return object.id;
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
 * Lists Stripe's events from `since` and queues every one the inbox lacks. Returns the low-water
 * mark: the time of the oldest event the inbox still lacks (queued, in flight, or failed), else of
 * the newest listed. The checkpoint never passes an event PostgreSQL has not recorded, so an event
 * acknowledged to Stripe but lost from Redis afterwards is listed and queued again by a later pass.
 */
async function reconcileEvents(
  deps: ReconcileDeps,
  options: ReconcileOptions,
  since: number,
  throttle: () => Promise<void>,
  until?: number,
) {
  let listed = 0;
  let enqueued = 0;
  let inFlight = 0;
  let newest: number | undefined;
  let oldestLacking: number | undefined;
  const succeeded = new Map<string, string>();
  let startingAfter: string | undefined;
  for (;;) {
    await throttle();
    const page = await deps.stripe.events.list({
      created: until === undefined ? { gte: since } : { gte: since, lte: until },
      types: [...HANDLED_EVENT_TYPES],
      limit: PAGE_SIZE,
      ...(startingAfter ? { starting_after: startingAfter } : {}),
    });
    listed += page.data.length;
    const known = new Set(
      (
        await deps.prisma.stripeEvent.findMany({
          where: { id: { in: page.data.map((event) => event.id) }, status: { not: 'failed' } },
          select: { id: true },
        })
      ).map((row) => row.id),
    );
    for (const event of page.data) {
      newest = Math.max(newest ?? event.created, event.created);
      const paymentIntentId = succeededPaymentIntent(event);
      if (paymentIntentId) succeeded.set(paymentIntentId, event.id);
      if (known.has(event.id)) continue;
      oldestLacking = Math.min(oldestLacking ?? event.created, event.created);
      if (await requeueEvent(deps.eventsQueue, event, options.jobBackoffMs)) enqueued += 1;
      else inFlight += 1;
    }
    const last = page.data.at(-1);
    if (!page.has_more || !last) break;
    startingAfter = last.id;
  }
  return { listed, enqueued, inFlight, lowWater: oldestLacking ?? newest, succeeded };
}

/**
 * Unpaid orders due for a look, each with a growing back-off (`staleAfter` × 2^checks, at most
 * 6 h) so that abandoned orders cannot hide newer ones. Past ORDER_TTL the look is an `expire`:
 * cancel the PaymentIntent at Stripe unless it is paid (then it is credited); an order that never
 * got a PaymentIntent simply ends as expired. Claimed with SKIP LOCKED: concurrent passes split
 * the orders between them.
 */
async function checkUnpaidOrders(deps: ReconcileDeps, options: ReconcileOptions) {
  const stale = options.staleAfterSeconds;
  const ttl = options.orderTtlSeconds ?? 24 * 3600;
  const due = await deps.prisma.$queryRaw<{ id: string; payment_intent_id: string | null; expiring: boolean }[]>`
    WITH due AS (
      SELECT id FROM orders
      WHERE status IN ('awaiting_payment', 'processing')
        AND COALESCE(next_check_at, created_at + make_interval(secs => ${stale}::int)) <= now()
      ORDER BY COALESCE(next_check_at, created_at + make_interval(secs => ${stale}::int))
      LIMIT ${options.orderBatchSize ?? 1_000}
      FOR NO KEY UPDATE SKIP LOCKED
    )
    UPDATE orders o
    SET checks = o.checks + 1,
        next_check_at = now() + make_interval(secs => LEAST(GREATEST(${stale}::int, 1) * power(2, LEAST(o.checks, 30)), ${MAX_CHECK_INTERVAL_SECONDS}::int)),
        status = CASE WHEN o.payment_intent_id IS NULL AND o.status = 'awaiting_payment' AND o.created_at < now() - make_interval(secs => ${ttl}::int)
                      THEN 'expired'::"OrderStatus" ELSE o.status END
    FROM due WHERE o.id = due.id
    RETURNING o.id, o.payment_intent_id, o.created_at < now() - make_interval(secs => ${ttl}::int) AS expiring`;
  const jobs = due.flatMap(({ payment_intent_id: paymentIntentId, expiring }) => {
    if (!paymentIntentId) return [];
    const reason = expiring ? ('expire' as const) : ('reconcile' as const);
    const jobId = expiring ? `expire-${paymentIntentId}` : paymentSyncJobId(paymentIntentId);
    return [{ name: reason, data: { paymentIntentId, reason }, opts: jobOptions('paymentSync', jobId, options.jobBackoffMs) }];
  });
  if (jobs.length > 0) await deps.syncQueue.addBulk(jobs);
  return {
    checked: jobs.filter((job) => job.data.reason === 'reconcile').length,
    expiring: jobs.filter((job) => job.data.reason === 'expire').length,
    expired: due.filter((order) => order.expiring && !order.payment_intent_id).length,
  };
}

/** Sorts the window's succeeded payments into credited, held, not ours and not yet credited. */
async function classifySucceeded(prisma: PrismaClient, succeeded: Map<string, string>): Promise<SucceededPayments> {
  const paymentIntents = [...succeeded.keys()];
  const [credited, held, notOurs] = await Promise.all([
    prisma.ledgerEntry.findMany({ where: { entryType: 'topup', reference: { in: paymentIntents } }, select: { reference: true } }),
    prisma.heldFact.findMany({ where: { entryType: 'topup', reference: { in: paymentIntents } }, select: { reference: true } }),
    prisma.stripeEvent.findMany({ where: { id: { in: [...succeeded.values()] }, status: 'not_ours' }, select: { objectId: true } }),
  ]);
  const creditedSet = new Set(credited.map((row) => row.reference));
  const heldSet = new Set(held.map((row) => row.reference).filter((id) => !creditedSet.has(id)));
  const notOursEvents = new Set(notOurs.map((row) => row.objectId));
  const notOursSet = new Set(
    [...succeeded]
      .filter(([paymentIntentId, eventId]) => notOursEvents.has(paymentIntentId) || notOursEvents.has(eventId))
      .map(([id]) => id),
  );
  return {
    credited: creditedSet.size,
    held: [...heldSet],
    notOurs: notOursSet.size,
    uncredited: paymentIntents.filter((id) => !creditedSet.has(id) && !heldSet.has(id) && !notOursSet.has(id)),
  };
}

/**
 * One reconciliation pass, for when a webhook never arrives (endpoint down, Stripe gave up after
 * 3 days) or Redis loses what it had acknowledged (a failover to a replica that missed the last
 * writes, a crash without fsync, a flush):
 * (a) list Stripe events from a low-water checkpoint kept in PostgreSQL and queue those the inbox
 *     lacks, under their own event ids — the same path and dedupe as a webhook;
 * (b) look at unpaid orders with a growing back-off, and expire those past ORDER_TTL;
 * (c) report what became of the window's succeeded payments.
 * https://docs.stripe.com/webhooks/process-undelivered-events
 */
export async function reconcileOnce(deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileReport> {
  const throttle = rateLimiter(options.maxRequestsPerSecond);
  const now = Math.floor(Date.now() / 1000);
  const stored = await deps.prisma.checkpoint.findUnique({ where: { name: CHECKPOINT } });
  const since = Math.max(
    stored ? Number(stored.value) - (options.overlapSeconds ?? 300) : now - (options.initialLookbackSeconds ?? 3 * 24 * 3600),
    now - STRIPE_EVENT_WINDOW_SECONDS,
  );

  const { window } = options;
  const events = window
    ? await reconcileEvents(deps, options, Math.max(window.since, now - STRIPE_EVENT_WINDOW_SECONDS), throttle, window.until)
    : await reconcileEvents(deps, options, since, throttle);
  const orders = await checkUnpaidOrders(deps, options);
  const payments = await classifySucceeded(deps.prisma, events.succeeded);
  const checkpoint = window ? (stored ? Number(stored.value) : since) : (events.lowWater ?? (stored ? Number(stored.value) : since));
  if (!window) {
    await deps.prisma.checkpoint.upsert({
      where: { name: CHECKPOINT },
      create: { name: CHECKPOINT, value: String(checkpoint) },
      update: { value: String(checkpoint) },
    });
  }

  const report: ReconcileReport = {
    eventsListed: events.listed,
    eventsEnqueued: events.enqueued,
    eventsInFlight: events.inFlight,
    staleOrdersChecked: orders.checked,
    ordersExpiring: orders.expiring,
    ordersExpired: orders.expired,
    uncredited: payments.uncredited,
    payments,
    checkpoint,
  };
  const logged = {
    ...report,
    uncredited: payments.uncredited.slice(0, 20),
    payments: { ...payments, held: payments.held.slice(0, 20), uncredited: payments.uncredited.length },
  };
  if (payments.uncredited.length > 0) {
    deps.logger.warn(logged, `reconcile: ${payments.uncredited.length} succeeded payment(s) not credited yet (their events are queued)`);
  } else if (payments.held.length > 0) {
    deps.logger.warn(logged, `reconcile: ${payments.held.length} succeeded payment(s) held for review (npm run review -- list)`);
  } else {
    deps.logger.info(logged, 'reconcile: Stripe and the ledger agree');
  }
  return report;
}
