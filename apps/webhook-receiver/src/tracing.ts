import { QUEUES, tracing, type JobQueues, type Tracing } from '@ledger/shared';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { addJobOnce, type CatalogJob } from './enqueue.js';
import { HttpError } from './errors.js';

// The receiver's spans, used only when tracing is on (the routes choose once, at registration).

type Handler = RouteOptions['handler'];

/**
 * `handler` inside a SERVER span named `POST <route>`, active while it runs (so the spans it
 * makes, ioredis' included, are its children), continuing a `traceparent` the request brings.
 */
export function tracedRoute(tracing: Tracing, route: string, handler: Handler): Handler {
  const { api, tracer } = tracing;
  return function traced(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
    // From the active context, as OpenTelemetry's HTTP instrumentation does: the root one for a
    // request from outside, a suppressed one for the warm-up's own deliveries (warm-up.ts).
    const parent = api.propagation.extract(api.context.active(), request.headers);
    const attributes = { 'http.request.method': request.method, 'http.route': route, 'url.path': route, 'request.id': request.id };
    return tracer.startActiveSpan(`${request.method} ${route}`, { kind: api.SpanKind.SERVER, attributes }, parent, async (span) => {
      try {
        const answer = await handler.call(this, request, reply);
        span.setAttribute('http.response.status_code', reply.statusCode);
        return answer;
      } catch (error) {
        const status = error instanceof HttpError ? error.statusCode : 500;
        span.setAttribute('http.response.status_code', status);
        if (error instanceof HttpError) span.setAttribute('error.type', error.code);
        if (status >= 500) {
          span.recordException(error instanceof Error ? error : String(error));
          span.setStatus({ code: api.SpanStatusCode.ERROR });
        }
        throw error;
      } finally {
        span.end();
      }
    });
  };
}

/** The kinds of job whose payload carries its producer's trace context (`trace`). */
type TracedKind = 'stripeEvents' | 'paymentSync' | 'reviews' | 'eventRecovery';

/**
 * {@link addJobOnce}, and with tracing on inside a PRODUCER span `<queue> publish` whose context
 * the job carries (`trace`): the worker's span continues this trace. Off, it is addJobOnce itself.
 */
export function addJob<K extends TracedKind>(
  queues: JobQueues,
  kind: K,
  job: CatalogJob<K>,
  attributes: Record<string, string> = {},
): Promise<{ duplicate: boolean; failed: boolean }> {
  if (!tracing) return addJobOnce(queues, kind, job);
  const on = tracing;
  const { api, tracer } = on;
  const spanAttributes = {
    'messaging.system': 'bullmq',
    'messaging.operation.type': 'send',
    'messaging.destination.name': QUEUES[kind],
    'messaging.message.id': job.jobId,
    'messaging.bullmq.job.name': job.name,
    ...attributes,
  };
  return tracer.startActiveSpan(`${QUEUES[kind]} publish`, { kind: api.SpanKind.PRODUCER, attributes: spanAttributes }, async (span) => {
    try {
      const added = await addJobOnce(queues, kind, { ...job, data: { ...job.data, trace: on.carrier() } });
      span.setAttribute('messaging.bullmq.duplicate', added.duplicate);
      return added;
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: api.SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}
