import { stripeEventJobData, type Logger, type PrismaClient, type Stripe, type StripeScope } from '@ledger/shared';
import type { Job, Queue } from 'bullmq';
import type { ApplyResult } from '@ledger/ledger';
import { processStripeEvent } from '../jobs/stripe-event.js';
import type { WorkerMetrics } from '../metrics.js';

/** What replaying one event did. */
export interface ReplayResult {
  eventId: string;
  result: 'newly applied' | 'already applied' | 'held' | 'not ours' | 'failed';
  detail: string;
}

export interface ReplayDeps {
  prisma: PrismaClient;
  /** The events queue: where kept payloads and failed jobs are. */
  eventsQueue: Queue;
  stripe: Stripe;
  scope?: StripeScope;
  metrics: WorkerMetrics;
  logger: Logger;
}

function replayResultOf(outcome: ApplyResult): ReplayResult['result'] {
  if (outcome.outcomes.includes('held')) return 'held';
  if (outcome.outcomes.length > 0 && outcome.outcomes.every((o) => o === 'not_ours')) return 'not ours';
  const changed = outcome.eventIsNew && outcome.outcomes.some((o) => o === 'applied' || o === 'status_only');
  return changed ? 'newly applied' : 'already applied';
}

function replayDetailOf(outcome: ApplyResult): string {
  if (!outcome.eventIsNew) return 'event already processed';
  const outcomes = outcome.outcomes.join(', ') || 'nothing to apply';
  return outcome.details.length > 0 ? `${outcomes}: ${outcome.details.join('; ')}` : outcomes;
}

/**
 * Sends events back through the normal dedupe path: the same function and transaction as the
 * worker (inbox claim, ledger unique keys), so a replay can never credit twice. A held event is
 * looked at again (its cause may be fixed), so replay never calls it "already applied". The payload
 * comes from the kept job, or from Stripe when the job is gone. A replayed failed job that now
 * succeeds leaves the failed list (its inbox row says what happened).
 */
export async function replayEvents(deps: ReplayDeps, selection: { eventIds: string[] } | { failed: true }): Promise<ReplayResult[]> {
  const targets: { eventId: string; job?: Job }[] = [];
  if ('failed' in selection) {
    for (let start = 0; ; start += 100) {
      const page = await deps.eventsQueue.getFailed(start, start + 99);
      for (const job of page) if (job.id) targets.push({ eventId: job.id, job });
      if (page.length < 100) break;
    }
  } else {
    for (const eventId of selection.eventIds) targets.push({ eventId, job: (await deps.eventsQueue.getJob(eventId)) ?? undefined });
  }

  const results: ReplayResult[] = [];
  for (const { eventId, job } of targets) {
    const log = deps.logger.child({ eventId, replay: true });
    try {
      const data = job?.data ?? stripeEventJobData(await deps.stripe.events.retrieve(eventId));
      const outcome = await processStripeEvent(deps, data, log);
      results.push({ eventId, result: replayResultOf(outcome), detail: replayDetailOf(outcome) });
      if (job && (await job.isFailed())) await job.remove();
    } catch (error) {
      results.push({ eventId, result: 'failed', detail: error instanceof Error ? error.message : String(error) });
    }
  }
  return results;
}
