import { JOBS, traceCarrierSchema, type JobData, type Tracing } from '@ledger/shared';
import type { ApplyResult } from '@ledger/ledger';
import type { Job } from 'bullmq';

// The worker's spans, used only when tracing is on (workers.ts chooses once, when it starts).

/**
 * `process` inside a CONSUMER span `stripe-events process`, continuing the trace the job carries
 * from the receiver's delivery (a job without one, queued by an earlier release or by
 * reconciliation, starts its own trace). The ledger's spans (group commit, Prisma's) are its children.
 */
export function tracedEventJob(
  tracing: Tracing,
  process: (job: Job<JobData<'stripeEvents'>>, token?: string) => Promise<ApplyResult>,
): (job: Job<JobData<'stripeEvents'>>, token?: string) => Promise<ApplyResult> {
  const { api, tracer } = tracing;
  return (job, token) => {
    const carrier = traceCarrierSchema.safeParse((job.data as { trace?: unknown } | undefined)?.trace);
    const parent = carrier.success ? tracing.contextOf(carrier.data) : api.ROOT_CONTEXT;
    const attributes = {
      'messaging.system': 'bullmq',
      'messaging.operation.type': 'process',
      'messaging.destination.name': JOBS.stripeEvents.queue,
      'messaging.message.id': job.id ?? '',
      'messaging.bullmq.attempt': job.attemptsMade + 1,
      'stripe.event.id': job.id ?? '',
      'stripe.event.type': job.name,
    };
    const name = `${JOBS.stripeEvents.queue} process`;
    return tracer.startActiveSpan(name, { kind: api.SpanKind.CONSUMER, attributes }, parent, async (span) => {
      try {
        const result = await process(job, token);
        span.setAttributes({
          'ledger.event_is_new': result.eventIsNew,
          'ledger.outcomes': result.outcomes,
          ...(result.order ? { 'ledger.order_id': result.order.orderId, 'ledger.account_id': result.order.accountId } : {}),
        });
        return result;
      } catch (error) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: api.SpanStatusCode.ERROR });
        throw error;
      } finally {
        span.end();
      }
    });
  };
}
