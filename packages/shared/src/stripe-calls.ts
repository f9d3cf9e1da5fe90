import { Counter, Histogram, type Registry } from 'prom-client';
import type Stripe from 'stripe';

/** How one HTTP attempt to Stripe ended (each SDK retry is an attempt of its own). */
export type StripeCallOutcome = 'ok' | 'client_error' | 'rate_limited' | 'server_error' | 'network_error';

/** One HTTP attempt to Stripe, as the SDK's HTTP client saw it. */
export interface StripeCall {
  method: string;
  /** The path template: ids replaced by `:id`, no query (`/v1/payment_intents/:id/cancel`). */
  endpoint: string;
  outcome: StripeCallOutcome;
  /** Status code, absent for a network error or a timeout. */
  status?: number;
  /** Until the response headers arrived (or the attempt failed). */
  seconds: number;
}

type StripeCallListener = (call: StripeCall) => void;

const listeners = new WeakMap<Stripe, Set<StripeCallListener>>();

/** Distinct endpoints labelled per process; later ones are `other`, so label cardinality stays bounded. */
const MAX_ENDPOINTS = 64;
const seenEndpoints = new Set<string>();

/**
 * A Stripe id segment (`pi_3Nx…`, `evt_1…`, `cs_test_a1…`): a lowercase prefix, `_`, and a body with
 * a digit or an uppercase letter, which resource names (`payment_intents`) never have.
 */
const ID_SEGMENT = /^[a-z]+_[A-Za-z0-9_]*[0-9A-Z][A-Za-z0-9_]*$/;

/** The path template of a Stripe request path: `/v1/payment_intents/pi_123/cancel?x=1` → `/v1/payment_intents/:id/cancel`. */
export function stripeEndpoint(path: string): string {
  const template = (path.split('?')[0] ?? '')
    .split('/')
    .map((segment) => (ID_SEGMENT.test(segment) ? ':id' : segment))
    .join('/');
  if (seenEndpoints.has(template)) return template;
  if (seenEndpoints.size >= MAX_ENDPOINTS) return 'other';
  seenEndpoints.add(template);
  return template;
}

/** The outcome of an answered attempt. */
export function stripeOutcome(status: number): StripeCallOutcome {
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'server_error';
  if (status >= 400) return 'client_error';
  return 'ok';
}

/**
 * Wraps the SDK's HTTP client: it sees every attempt, retries included. The SDK's own `response`
 * event fires once per call, after its retries, and never for a network error.
 */
export function observedHttpClient(inner: Stripe.HttpClient, emit: (call: StripeCall) => void): Stripe.HttpClient {
  const client = Object.create(inner) as Stripe.HttpClient;
  client.makeRequest = async (host, port, path, method, headers, requestData, protocol, timeout) => {
    const started = performance.now();
    const endpoint = stripeEndpoint(path);
    const seconds = () => (performance.now() - started) / 1000;
    try {
      const response = await inner.makeRequest(host, port, path, method, headers, requestData, protocol, timeout);
      const status = response.getStatusCode();
      emit({ method, endpoint, outcome: stripeOutcome(status), status, seconds: seconds() });
      return response;
    } catch (error) {
      emit({ method, endpoint, outcome: 'network_error', seconds: seconds() });
      throw error;
    }
  };
  return client;
}

/** The listener set of a client (`createStripeClient` registers the one its HTTP client calls). */
export function stripeCallListeners(stripe: Stripe, set?: Set<StripeCallListener>): Set<StripeCallListener> {
  if (set) listeners.set(stripe, set);
  let found = listeners.get(stripe);
  if (!found) {
    found = new Set();
    listeners.set(stripe, found);
  }
  return found;
}

/** Calls `listener` for every HTTP attempt `stripe` makes (a client from `createStripeClient`); returns the unsubscribe. */
export function observeStripeCalls(stripe: Stripe, listener: StripeCallListener): () => void {
  const set = stripeCallListeners(stripe);
  set.add(listener);
  return () => set.delete(listener);
}

/**
 * `ledger_stripe_requests_total{method,endpoint,outcome}` and
 * `ledger_stripe_request_duration_seconds{method,endpoint}`, the same in both apps.
 */
export function createStripeCallMetrics(registry: Registry) {
  const requests = new Counter({
    name: 'ledger_stripe_requests_total',
    help: 'HTTP attempts to the Stripe API (each SDK retry counts), by method, endpoint template and outcome (ok, client_error, rate_limited, server_error, network_error).',
    labelNames: ['method', 'endpoint', 'outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'ledger_stripe_request_duration_seconds',
    help: 'Latency of HTTP attempts to the Stripe API until the response headers, by method and endpoint template.',
    labelNames: ['method', 'endpoint'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return {
    requests,
    duration,
    observe(call: StripeCall) {
      requests.inc({ method: call.method, endpoint: call.endpoint, outcome: call.outcome });
      duration.observe({ method: call.method, endpoint: call.endpoint }, call.seconds);
    },
  };
}
