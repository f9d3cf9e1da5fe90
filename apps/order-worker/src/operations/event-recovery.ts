import { paymentSyncJobId, jobOptions, type EventRecoveryJob } from '@ledger/shared';
import { reconcileOnce, type ReconcileDeps, type ReconcileOptions, type ReconcileReport } from './reconcile.js';

/** How far before the failure's resolution the recovery pass lists events and looks at orders. */
export const RECOVERY_LOOKBACK_SECONDS = 24 * 3600;

/** What a `v2.core.health.event_generation_failure.resolved` event says, as far as recovery reads it. */
interface GenerationFailure {
  data?: {
    resolved_at?: string | null;
    impact?: {
      event_type?: string | null;
      related_object?: { id?: string | null; type?: string | null } | null;
      /** The private preview's field, before `related_object`. */
      related_object_id?: string | null;
    } | null;
  } | null;
}

export interface RecoveryReport {
  eventType: string | undefined;
  relatedObject: string | undefined;
  window: { since: number; until: number };
  /** The related PaymentIntent's sync was queued. */
  syncQueued: boolean;
  reconcile: ReconcileReport;
}

/**
 * Stripe failed to generate some events and has resolved the failure: those events will never be
 * delivered nor listed (https://docs.stripe.com/webhooks/handle-irrecoverable-events). The thin
 * notification names no object, so the event is retrieved (`GET /v2/core/events/:id`) for what it
 * names: the object it was about (a PaymentIntent is synced from Stripe's current view of it) and
 * when the failure ended. A reconciliation pass then covers the day before that: the events listed
 * in the window that the inbox lacks are queued, and every unpaid order due a look is checked at
 * Stripe, which finds a payment whose event was never generated. The checkpoint does not move.
 */
export async function recoverGenerationFailure(
  deps: ReconcileDeps,
  options: ReconcileOptions,
  job: EventRecoveryJob,
): Promise<RecoveryReport> {
  const event = (await deps.stripe.v2.core.events.retrieve(job.eventId)) as unknown as GenerationFailure;
  const impact = event.data?.impact ?? undefined;
  const resolvedAt = event.data?.resolved_at ? Math.floor(Date.parse(event.data.resolved_at) / 1000) : Number.NaN;
  const until = Number.isFinite(resolvedAt) ? Math.max(resolvedAt, job.created) : job.created;
  const window = { since: until - RECOVERY_LOOKBACK_SECONDS, until: until + 60 };
  const relatedObject = impact?.related_object?.id ?? impact?.related_object_id ?? undefined;
  let syncQueued = false;
  if (relatedObject && /^pi_[A-Za-z0-9_]+$/.test(relatedObject)) {
    await deps.syncQueue.add(
      'reconcile',
      { paymentIntentId: relatedObject, reason: 'reconcile' },
      jobOptions('paymentSync', paymentSyncJobId(relatedObject), options.jobBackoffMs),
    );
    syncQueued = true;
  }
  const reconcile = await reconcileOnce(deps, { ...options, window });
  const report = { eventType: impact?.event_type ?? undefined, relatedObject, window, syncQueued, reconcile };
  deps.logger.warn(
    { eventId: job.eventId, eventType: report.eventType, relatedObject, window, syncQueued, eventsEnqueued: reconcile.eventsEnqueued },
    'recovered from an event generation failure',
  );
  return report;
}
