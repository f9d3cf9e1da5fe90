import type * as otel from '@opentelemetry/api';
import { z } from 'zod';

// OpenTelemetry traces, OFF unless configured. Off, nothing of OpenTelemetry is even loaded: the
// SDK module is imported only when tracing starts, and every traced place checks `tracing` once.
// (A first attempt wrapped every request whatever the setting and cost 20% of the ingest bench.)

/** The W3C trace context (https://www.w3.org/TR/trace-context/) a job carries from its producer's span. */
export const traceCarrierSchema = z.object({
  traceparent: z.string().regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/),
  tracestate: z.string().max(512).optional(),
});
export type TraceCarrier = z.infer<typeof traceCarrierSchema>;

/**
 * A job's `trace` field: its producer's trace context, only when the producer's tracing is on, so
 * the worker's span joins that trace. Optional both ways: jobs of an earlier release have none, and
 * an earlier worker drops it (zod strips unknown keys). One that does not parse is dropped too: a
 * money job never fails over its tracing.
 */
export const jobTraceSchema = traceCarrierSchema.optional().catch(undefined);

/** What traced code uses once tracing is on. */
export interface Tracing {
  /** `@opentelemetry/api`, loaded only when tracing is on. */
  readonly api: typeof otel;
  readonly tracer: otel.Tracer;
  /** The active context as W3C headers, to put in a job's data. */
  carrier(): TraceCarrier;
  /** The context a job's carrier names (the active one when it carries none: a job of an earlier release). */
  contextOf(carrier: TraceCarrier | undefined): otel.Context;
  /** The active span's trace id, for log lines. */
  traceId(): string | undefined;
  /** The active context with tracing suppressed: what runs in it makes no span (a warm-up's work). */
  suppressed(): otel.Context;
  /** Exports what is buffered, then stops. */
  shutdown(): Promise<void>;
}

/** The process's tracing, or undefined when it is off (the default). Traced code checks it with one `if`. */
export let tracing: Tracing | undefined;

/** The OpenTelemetry variables a service's `--help` names (the SDK reads more: README, Tracing). */
export const TRACING_ENVIRONMENT = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_SDK_DISABLED',
  'OTEL_SERVICE_NAME',
  'OTEL_TRACES_SAMPLER',
] as const;

/**
 * Tracing is on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_ENDPOINT`) and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`
 * says otherwise. Everything else (service name, sampler, headers, protocol) is the SDK's own
 * standard variables.
 */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim());
}

/**
 * Starts tracing when the environment asks for it (see {@link tracingConfigured}); before the
 * process opens its clients, so Prisma and ioredis report their spans. Returns it, or undefined.
 */
export async function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing | undefined> {
  if (!tracingConfigured(env)) return undefined;
  const { createTracing } = await import('./tracing-sdk.js');
  tracing = createTracing(serviceName) satisfies Tracing;
  return tracing;
}

/** Runs `run` with tracing suppressed when tracing is on (a warm-up is no one's trace); as it is when off. */
export function untraced<T>(run: () => T): T {
  return tracing ? tracing.api.context.with(tracing.suppressed(), run) : run();
}

/** The trace id a job's carrier names, for the lines logged outside its span. */
export function traceIdOf(carrier: TraceCarrier | undefined): string | undefined {
  return carrier?.traceparent.slice(3, 35);
}
