import { createRequire } from 'node:module';
import * as api from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { PrismaInstrumentation } from '@prisma/instrumentation';

// Loaded by startTracing only when tracing is on (tracing.ts, which checks that this makes its
// `Tracing`): nothing here runs otherwise.

/** W3C trace context headers (tracing.ts' TraceCarrier). */
type Carrier = { traceparent: string; tracestate?: string };

/**
 * The SDK, lightest setup: one provider, a batching processor, the OTLP/HTTP exporter (which reads
 * OTEL_EXPORTER_OTLP_* itself), the W3C propagator, and the spans Prisma, pg and ioredis report.
 * OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default service name; the sampler
 * comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
 */
export function createTracing(serviceName: string) {
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  // The global provider, the AsyncLocalStorage context manager, and the tracecontext + baggage propagators.
  provider.register();
  const unregister = registerInstrumentations({
    tracerProvider: provider,
    // requireParentSpan: BullMQ's polling of Redis (a blocking read every few seconds per worker) is
    // no one's trace; a command made while a request or a job is being handled is.
    // pg's: the group-commit statement goes through the Prisma client's pool directly (poolOf).
    instrumentations: [
      new IORedisInstrumentation({ requireParentSpan: true }),
      new PgInstrumentation({ requireParentSpan: true }),
      new PrismaInstrumentation(),
    ],
  });
  // This module loads after the app's own (ESM imports run first, and ioredis with them): the
  // instrumentation patches ioredis when it is next required, which this does once.
  createRequire(import.meta.url)('ioredis');
  createRequire(import.meta.url)('pg');

  const tracer = provider.getTracer('stripe-exactly-once');
  return {
    api,
    tracer,
    carrier(): Carrier {
      const carrier: Partial<Carrier> = {};
      api.propagation.inject(api.context.active(), carrier);
      return carrier as Carrier;
    },
    contextOf(carrier: Carrier | undefined) {
      return carrier ? api.propagation.extract(api.context.active(), carrier) : api.context.active();
    },
    traceId() {
      return api.trace.getActiveSpan()?.spanContext().traceId;
    },
    suppressed() {
      return suppressTracing(api.context.active());
    },
    async shutdown() {
      unregister();
      await provider.shutdown();
    },
  };
}
