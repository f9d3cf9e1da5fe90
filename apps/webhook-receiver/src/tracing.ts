import { QUEUES, type JobQueues, type Tracing } from '@ledger/shared';
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
    const parent = api.propagation.extract(api.ROOT_CONTEXT, request.headers);
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

/**
 * {@link addJobOnce} for a Stripe event inside a PRODUCER span `stripe-events publish`, whose
 * context the job carries (`trace`): the worker's span continues this trace.
 */
export function addTracedEventJob(
  tracing: Tracing,
  queues: JobQueues,
  job: CatalogJob<'stripeEvents'>,
): Promise<{ duplicate: boolean; failed: boolean }> {
  const { api, tracer } = tracing;
  const attributes = {
    'messaging.system': 'bullmq',
    'messaging.operation.type': 'send',
    'messaging.destination.name': QUEUES.stripeEvents,
    'messaging.message.id': job.jobId,
    'stripe.event.id': job.jobId,
  };
  return tracer.startActiveSpan(`${QUEUES.stripeEvents} publish`, { kind: api.SpanKind.PRODUCER, attributes }, async (span) => {
    try {
      const added = await addJobOnce(queues, 'stripeEvents', { ...job, data: { ...job.data, trace: tracing.carrier() } });
      span.setAttribute('stripe.event.duplicate', added.duplicate);
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
