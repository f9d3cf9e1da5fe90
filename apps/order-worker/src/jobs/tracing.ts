import { traceCarrierSchema, type Tracing } from '@ledger/shared';
import type { ApplyResult } from '@ledger/ledger';
import type { Job } from 'bullmq';

// The worker's spans, used only when tracing is on (workers.ts and the maintenance worker choose
// once, when they start).

type Attributes = Record<string, string | number | boolean | string[]>;
type Processor<D, R> = (job: Job<D>, token?: string) => Promise<R>;

/** What a queue's span says of its job before and after processing. */
export interface JobSpanAttributes<D, R> {
  /** The job's own attributes (the event, the PaymentIntent, the order). */
  of?: (job: Job<D>) => Attributes;
  /** What came of it. */
  result?: (result: R) => Attributes;
}

/**
 * `process` inside a CONSUMER span `<queue> process`, continuing the trace the job carries from
 * its producer's span (a webhook's delivery, an order's confirm, an operator's resolution). A job
 * without one (queued by an earlier release, by reconciliation or by a schedule) starts its own
 * trace. The spans made while it runs (group commit, Prisma's, pg's, ioredis', Stripe calls) are
 * its children.
 */
export function tracedJob<D, R>(
  tracing: Tracing,
  queue: string,
  process: Processor<D, R>,
  describe: JobSpanAttributes<D, R> = {},
): Processor<D, R> {
  const { api, tracer } = tracing;
  return (job, token) => {
    const carrier = traceCarrierSchema.safeParse((job.data as { trace?: unknown } | undefined)?.trace);
    const parent = carrier.success ? tracing.contextOf(carrier.data) : api.ROOT_CONTEXT;
    const attributes = {
      'messaging.system': 'bullmq',
      'messaging.operation.type': 'process',
      'messaging.destination.name': queue,
      'messaging.message.id': job.id ?? '',
      'messaging.bullmq.job.name': job.name,
      'messaging.bullmq.attempt': job.attemptsMade + 1,
      ...describe.of?.(job),
    };
    return tracer.startActiveSpan(`${queue} process`, { kind: api.SpanKind.CONSUMER, attributes }, parent, async (span) => {
      try {
        const result = await process(job, token);
        if (describe.result) span.setAttributes(describe.result(result));
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

/** An event job's span: the event, and the order and account the ledger found. */
export const EVENT_JOB_SPAN: JobSpanAttributes<unknown, ApplyResult> = {
  of: (job) => ({ 'stripe.event.id': job.id ?? '', 'stripe.event.type': job.name }),
  result: (result) => ({
    'ledger.event_is_new': result.eventIsNew,
    'ledger.outcomes': result.outcomes,
    ...(result.order ? { 'ledger.order_id': result.order.orderId, 'ledger.account_id': result.order.accountId } : {}),
  }),
};
