import type { FastifyBaseLogger } from 'fastify';
import Stripe from 'stripe';
import type { ConfigStore, EmulatorConfig, WebhookEndpoint } from './config.js';
import { eventTypeMatches, renderAt, type StoredEvent } from './store.js';

// The SDK's own HMAC, so signatures are computed exactly as `stripe.webhooks.constructEvent` checks them.
const cryptoProvider = Stripe.createNodeCryptoProvider();

/**
 * Stripe's `Stripe-Signature` header (https://docs.stripe.com/webhooks#verify-manually):
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>">`, one `v1` per secret while a secret rolls.
 */
export function signatureHeader(payload: string, secrets: readonly string[], timestamp: number): string {
  const signedPayload = `${timestamp}.${payload}`;
  const signatures = secrets.map((secret) => `v1=${cryptoProvider.computeHMACSignature(signedPayload, secret)}`);
  return [`t=${timestamp}`, ...signatures].join(',');
}

/**
 * Something to deliver: a v1 event, rendered at each endpoint's version, or a v2 thin event
 * notification (thin-events.ts), the same at every endpoint.
 */
export interface Deliverable {
  id: string;
  type: string;
  /** The body for `endpoint`. */
  payload(endpoint: WebhookEndpoint): string;
  /** Endpoints that should get it and have not answered with a 2xx yet; the dispatcher keeps it. */
  pendingEndpoints: Set<string>;
}

/**
 * A v1 event as each endpoint gets it: at the endpoint's `apiVersion`, else at the event's own.
 * Stripe sends pretty-printed JSON: a receiver that verifies re-serialized JSON instead of the raw
 * bytes fails here as it would in production.
 */
export function eventDelivery(event: StoredEvent): Deliverable {
  return {
    id: event.id,
    type: event.type,
    pendingEndpoints: event.pendingEndpoints,
    payload: (endpoint) => JSON.stringify(renderAt(endpoint.apiVersion ?? event.api_version, event), null, 2),
  };
}

/** How one delivery attempt went. */
export interface DeliveryOutcome {
  eventId: string;
  /** The endpoint it went to (`we_0` is `webhookUrl`). */
  endpoint: string;
  ok: boolean;
  /** The endpoint's HTTP status, null when no response came (refused, reset, timed out). */
  status: number | null;
  error: string | undefined;
  durationMs: number;
}

/** Delivery counters (one event sent to two endpoints is two deliveries). */
interface DeliveryCounters {
  attempted: number;
  succeeded: number;
  failed: number;
  /** Deliveries that failed every attempt. */
  exhausted: number;
  /** Deliveries never sent because of `dropRate`. */
  dropped: number;
  /** Deliveries sent more than once because of `duplicateRate`. */
  duplicated: number;
}

/** Delivery counters of one endpoint. */
export interface EndpointDeliveryStats extends DeliveryCounters {
  url: string;
}

/**
 * Delivery counters over all endpoints; `pending` is waiting to be sent (queued, delayed or
 * waiting to retry).
 */
export interface DeliveryStats extends DeliveryCounters {
  pending: number;
  inFlight: number;
  /** Per endpoint id (`we_0`, `we_1`, …), endpoints that have had at least one delivery. */
  endpoints: Record<string, EndpointDeliveryStats>;
}

type Counter = keyof DeliveryCounters;

interface DeliveryJob {
  item: Deliverable;
  endpointId: string;
  attempt: number;
}

/**
 * Delivers events to the configured endpoints the way Stripe does (https://docs.stripe.com/webhooks):
 * a signed JSON POST per event and endpoint, a 2xx marks it delivered there, anything else (or no
 * answer before the timeout) is retried with exponential backoff and a fresh signature. Each
 * endpoint's delivery has its own attempts. The chaos knobs drop, duplicate, delay and reorder
 * deliveries with a seeded RNG, to prove the receiver copes.
 */
export class WebhookDispatcher {
  private readonly queue: DeliveryJob[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Map<AbortController, Promise<DeliveryOutcome>>();
  /** Queued jobs and manual redeliveries between their start and their last bookkeeping step. */
  private busy = 0;
  private idleWaiters: Array<() => void> = [];
  private pumpScheduled = false;
  private closed = false;
  private readonly counts = { attempted: 0, succeeded: 0, failed: 0, exhausted: 0, dropped: 0, duplicated: 0 };
  private readonly endpointCounts = new Map<string, EndpointDeliveryStats>();

  constructor(
    private readonly config: ConfigStore,
    private readonly log: FastifyBaseLogger,
  ) {}

  /**
   * Takes a new event. Each endpoint listening to its type gets a delivery of its own, pending (in
   * `pending_webhooks`) until it answers one with a 2xx; with none, the event is only listed
   * (`pending_webhooks: 0`). Every decision draws from the seeded RNG in event and endpoint order,
   * so a seed replays the same chaos.
   */
  enqueue(item: Deliverable): void {
    if (this.closed) return;
    const config = this.config.current;
    for (const endpoint of this.config.webhookEndpoints()) {
      if (!endpoint.enabledEvents.some((pattern) => eventTypeMatches(pattern, item.type))) continue;
      item.pendingEndpoints.add(endpoint.id);
      if (this.config.random() < config.dropRate) {
        this.count(endpoint, 'dropped');
        this.log.debug({ eventId: item.id, type: item.type, endpoint: endpoint.id }, 'webhook dropped (dropRate)');
        continue;
      }
      let copies = 1;
      if (this.config.random() < config.duplicateRate) {
        copies = this.config.random() < 0.25 ? 3 : 2;
        this.count(endpoint, 'duplicated');
      }
      for (let copy = 0; copy < copies; copy += 1) {
        this.schedule({ item, endpointId: endpoint.id, attempt: 1 }, this.initialDelay(config));
      }
    }
  }

  /**
   * Sends `item` once, now, to one endpoint, like the dashboard's "Resend": no chaos, no retry,
   * not held back by the concurrency limit. A 2xx marks it delivered there.
   */
  async redeliver(item: Deliverable, endpoint: WebhookEndpoint): Promise<DeliveryOutcome> {
    this.busy += 1;
    try {
      return await this.send(item, endpoint, 'manual');
    } finally {
      this.busy -= 1;
      this.settleIdleWaiters();
    }
  }

  /** Delivery counters right now. */
  stats(): DeliveryStats {
    return {
      ...this.counts,
      pending: this.queue.length + this.timers.size,
      inFlight: this.inFlight.size,
      endpoints: Object.fromEntries([...this.endpointCounts].map(([id, counts]) => [id, { ...counts }])),
    };
  }

  /** Resolves once nothing is queued, delayed, waiting to retry or in flight. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops for good: pending deliveries are forgotten, in-flight ones aborted and awaited. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    for (const controller of this.inFlight.keys()) controller.abort(new Error('stripe emulator closing'));
    await Promise.allSettled(this.inFlight.values());
    this.settleIdleWaiters();
  }

  private initialDelay(config: EmulatorConfig): number {
    const [min, max] = config.delayMs;
    return max > min ? min + Math.floor(this.config.random() * (max - min + 1)) : min;
  }

  private schedule(job: DeliveryJob, delayMs: number): void {
    if (delayMs <= 0) {
      this.queue.push(job);
      this.schedulePump();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.queue.push(job);
      this.schedulePump();
    }, delayMs);
    this.timers.add(timer);
  }

  // Pumping on a microtask lets every event of one action enter the queue first, so that
  // `reorder` has something to shuffle.
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const config = this.config.current;
    while (!this.closed && this.busy < config.concurrency && this.queue.length > 0) {
      const index = config.reorder ? Math.floor(this.config.random() * this.queue.length) : 0;
      const [job] = this.queue.splice(index, 1);
      if (job) void this.runJob(job);
    }
  }

  private async runJob(job: DeliveryJob): Promise<void> {
    this.busy += 1;
    try {
      const endpoint = this.config.webhookEndpoint(job.endpointId);
      if (endpoint === undefined) return; // the endpoint was removed meanwhile
      const outcome = await this.send(job.item, endpoint, `attempt ${job.attempt}`);
      if (outcome.ok || this.closed) return;
      const { attempts, baseDelayMs } = this.config.current.retry;
      if (job.attempt < attempts) {
        this.schedule({ ...job, attempt: job.attempt + 1 }, baseDelayMs * 2 ** (job.attempt - 1));
      } else {
        this.count(endpoint, 'exhausted');
        this.log.warn(
          { eventId: job.item.id, type: job.item.type, endpoint: endpoint.id, attempts },
          'webhook delivery gave up after every attempt',
        );
      }
    } finally {
      this.busy -= 1;
      this.schedulePump();
      this.settleIdleWaiters();
    }
  }

  private send(item: Deliverable, endpoint: WebhookEndpoint, label: string): Promise<DeliveryOutcome> {
    const controller = new AbortController();
    const sent = this.post(item, endpoint, label, controller).finally(() => this.inFlight.delete(controller));
    this.inFlight.set(controller, sent);
    return sent;
  }

  private async post(item: Deliverable, endpoint: WebhookEndpoint, label: string, controller: AbortController): Promise<DeliveryOutcome> {
    const { timeoutMs } = this.config.current;
    const started = performance.now();
    const outcome: DeliveryOutcome = { eventId: item.id, endpoint: endpoint.id, ok: false, status: null, error: undefined, durationMs: 0 };
    // Rendered at each attempt: `pending_webhooks` shows the endpoints not reached by then.
    const payload = item.payload(endpoint);
    // Each attempt is signed anew with the current time, as Stripe does, so retries pass the
    // receiver's timestamp tolerance.
    const signature = signatureHeader(payload, endpoint.secrets, Math.floor(Date.now() / 1000));
    const timeout = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    this.count(endpoint, 'attempted');
    try {
      const response = await fetch(endpoint.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json; charset=utf-8',
          'User-Agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
          'Cache-Control': 'no-cache',
          Accept: '*/*; q=0.5, application/xml',
          'Stripe-Signature': signature,
        },
        body: payload,
        signal: controller.signal,
        // Stripe does not follow redirects: a 3xx is a failed delivery.
        redirect: 'manual',
      });
      // Reading the body to its end lets the connection be reused for the next delivery.
      await response.arrayBuffer();
      outcome.status = response.status;
      outcome.ok = response.status >= 200 && response.status < 300;
      if (!outcome.ok) outcome.error = `HTTP ${response.status}`;
    } catch (error) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : error;
      outcome.error = reason instanceof Error ? (causeMessage(reason) ?? reason.message) : String(reason);
    } finally {
      clearTimeout(timeout);
    }
    outcome.durationMs = Math.round(performance.now() - started);
    const logFields = { eventId: item.id, type: item.type, endpoint: endpoint.id, status: outcome.status, label };
    if (outcome.ok) {
      this.count(endpoint, 'succeeded');
      item.pendingEndpoints.delete(endpoint.id);
      this.log.debug(logFields, 'webhook delivered');
    } else {
      this.count(endpoint, 'failed');
      this.log.warn({ ...logFields, error: outcome.error }, 'webhook delivery failed');
    }
    return outcome;
  }

  private count(endpoint: WebhookEndpoint, counter: Counter): void {
    this.counts[counter] += 1;
    let counts = this.endpointCounts.get(endpoint.id);
    if (counts === undefined) {
      counts = { url: endpoint.url, attempted: 0, succeeded: 0, failed: 0, exhausted: 0, dropped: 0, duplicated: 0 };
      this.endpointCounts.set(endpoint.id, counts);
    }
    counts.url = endpoint.url;
    counts[counter] += 1;
  }

  private isIdle(): boolean {
    return this.closed || (this.busy === 0 && this.queue.length === 0 && this.timers.size === 0 && this.inFlight.size === 0);
  }

  private settleIdleWaiters(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

// fetch reports "fetch failed" and hides the useful part (ECONNREFUSED, …) in `cause`.
function causeMessage(error: Error): string | undefined {
  const cause: unknown = error.cause;
  return cause instanceof Error ? `${error.message}: ${cause.message}` : undefined;
}
