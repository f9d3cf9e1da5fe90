/**
 * Load generator of the ingest benchmark, run as its own process so that it does not share an
 * event loop with the server it measures: posts signed `payment_intent.succeeded` events at full
 * speed with autocannon and prints autocannon's result as one JSON line.
 *
 *   node --import tsx bench/lib/ingest-load.ts '{"url":…,"connections":32,"seconds":10,…}'
 */
import autocannon from 'autocannon';
import { BENCH_WEBHOOK_SECRET, benchOrder, paymentSucceededEvent, stripeSignature } from './stripe-events.js';

/** What the parent asks for. */
export interface IngestLoadOptions {
  url: string;
  connections: number;
  seconds: number;
  warmupSeconds: number;
  /** `unique`: a fresh event id per request (each one is enqueued); `fixed`: one body (the duplicate path). */
  mode: 'unique' | 'fixed';
  /** Letters and digits that make this run's event ids its own. */
  idPrefix: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as IngestLoadOptions;
let sequence = 0;

function signedRequest(body: string): autocannon.Request {
  return {
    method: 'POST',
    path: '/webhooks/stripe',
    headers: { 'content-type': 'application/json', 'stripe-signature': stripeSignature(body, BENCH_WEBHOOK_SECRET) },
    body,
  };
}

const fixedBody = JSON.stringify(paymentSucceededEvent(benchOrder(`${options.idPrefix}fixed`, 0)));
// Re-signed per request too, so both modes cost the generator the same.
const nextRequest = () =>
  signedRequest(options.mode === 'fixed' ? fixedBody : JSON.stringify(paymentSucceededEvent(benchOrder(options.idPrefix, sequence++))));

const run = (seconds: number) =>
  autocannon({
    url: options.url,
    connections: options.connections,
    duration: seconds,
    // Spread: the request autocannon passes in carries the host and port it connects to.
    requests: [{ setupRequest: (request) => ({ ...request, ...nextRequest() }) }],
  });

const warmup = options.warmupSeconds > 0 ? await run(options.warmupSeconds) : undefined;
const result = await run(options.seconds);
const cpu = process.cpuUsage();
process.stdout.write(
  `${JSON.stringify({
    // Answered requests of the warm-up as well: the parent divides the server's CPU time by all of them.
    answeredIncludingWarmup: result.requests.total + (warmup?.requests.total ?? 0),
    // This process's own CPU: on two shared cores the generator's cost bounds what any server reaches.
    generatorCpuMs: (cpu.user + cpu.system) / 1000,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationSeconds: result.duration,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
    bodyBytes: Buffer.byteLength(fixedBody),
  })}\n`,
);
