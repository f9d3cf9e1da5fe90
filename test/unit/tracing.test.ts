import { JOBS, stripeEventJobData, traceIdOf, tracing, tracingConfigured } from '@ledger/shared';
import { describe, expect, it } from 'vitest';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('tracing: on only when an OTLP endpoint is set and nothing turns it off', () => {
  it.each([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'TRUE' }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'false' }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' }, false],
    [{ OTEL_SERVICE_NAME: 'receiver', OTEL_TRACES_SAMPLER: 'always_on' }, false],
  ])('%j → %s', (env, on) => {
    expect(tracingConfigured(env)).toBe(on);
  });

  it('is off in a process that did not start it (these tests): traced code sees undefined', () => {
    expect(tracing).toBeUndefined();
  });
});

describe('the trace carried in an event job', () => {
  const job = stripeEventJobData({
    id: 'evt_trace',
    type: 'payment_intent.succeeded',
    created: 1_700_000_000,
    livemode: false,
    data: { object: { id: 'pi_trace', object: 'payment_intent' } },
  });
  const parse = (data: unknown) => JOBS.stripeEvents.schema.parse(data);

  it('is absent from the job data unless the receiver traced the delivery', () => {
    expect(job).not.toHaveProperty('trace');
    expect(parse(job).trace).toBeUndefined();
  });

  it('is kept when well formed, and a malformed one is dropped instead of failing the money job', () => {
    expect(parse({ ...job, trace: { traceparent: TRACEPARENT, tracestate: 'vendor=1' } }).trace).toEqual({
      traceparent: TRACEPARENT,
      tracestate: 'vendor=1',
    });
    for (const trace of ['garbage', { traceparent: 'not-a-traceparent' }, 42]) {
      expect(parse({ ...job, trace })).toMatchObject({ id: 'evt_trace', trace: undefined });
    }
  });

  it('names its trace id for the lines logged outside the job span', () => {
    expect(traceIdOf({ traceparent: TRACEPARENT })).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(traceIdOf(undefined)).toBeUndefined();
  });
});
