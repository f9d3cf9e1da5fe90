import type { FastifyBaseLogger } from 'fastify';
import Stripe from 'stripe';
import type { ConfigStore, EmulatorConfig } from './config.js';
import { eventTypeMatches, type EmulatorEvent } from './store.js';

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

/** How one delivery attempt went. */
export interface DeliveryOutcome {
  eventId: string;
  ok: boolean;
  /** The endpoint's HTTP status, null when no response came (refused, reset, timed out). */
  status: number | null;
  error: string | undefined;
  durationMs: number;
}

/** Delivery counters. `pending` is waiting to be sent (queued, delayed or waiting to retry). */
export interface DeliveryStats {
  attempted: number;
  succeeded: number;
  failed: number;
  /** Deliveries that failed every attempt. */
  exhausted: number;
  /** Events never sent because of `dropRate`. */
  dropped: number;
  /** Events sent more than once because of `duplicateRate`. */
  duplicated: number;
  pending: number;
  inFlight: number;
}

interface DeliveryJob {
  event: EmulatorEvent;
  attempt: number;
}

/**
 * Delivers events to the configured endpoint the way Stripe does (https://docs.stripe.com/webhooks):
 * a signed JSON POST per event, a 2xx marks it delivered, anything else (or no answer before the
 * timeout) is retried with exponential backoff and a fresh signature. The chaos knobs drop,
 * duplicate, delay and reorder deliveries with a seeded RNG, to prove the receiver copes.
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

  constructor(
    private readonly config: ConfigStore,
    private readonly log: FastifyBaseLogger,
  ) {}

  /**
   * Takes a new event. With no endpoint, or a type the endpoint does not listen to, the event is
   * only listed (`pending_webhooks: 0`); otherwise it is pending until a delivery gets a 2xx.
   * Every decision draws from the seeded RNG in event order, so a seed replays the same chaos.
   */
  enqueue(event: EmulatorEvent): void {
    const config = this.config.current;
    if (this.closed || config.webhookUrl === undefined) return;
    if (!config.enabledEvents.some((pattern) => eventTypeMatches(pattern, event.type))) return;
    event.pending_webhooks = 1;
    if (this.config.random() < config.dropRate) {
      this.counts.dropped += 1;
      this.log.debug({ eventId: event.id, type: event.type }, 'webhook dropped (dropRate)');
      return;
    }
    let copies = 1;
    if (this.config.random() < config.duplicateRate) {
      copies = this.config.random() < 0.25 ? 3 : 2;
      this.counts.duplicated += 1;
    }
    for (let copy = 0; copy < copies; copy += 1) {
      this.schedule({ event, attempt: 1 }, this.initialDelay(config));
    }
  }

  /**
   * Sends `event` once, now, like the dashboard's "Resend": no chaos, no retry, not held back by
   * the concurrency limit. A 2xx marks the event delivered.
   */
  async redeliver(event: EmulatorEvent): Promise<DeliveryOutcome> {
    this.busy += 1;
    try {
      return await this.send(event, 'manual');
    } finally {
      this.busy -= 1;
      this.settleIdleWaiters();
    }
  }

  /** Delivery counters right now. */
  stats(): DeliveryStats {
    return { ...this.counts, pending: this.queue.length + this.timers.size, inFlight: this.inFlight.size };
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
      if (this.config.current.webhookUrl === undefined) return; // the endpoint was removed meanwhile
      const outcome = await this.send(job.event, `attempt ${job.attempt}`);
      if (outcome.ok || this.closed) return;
      const { attempts, baseDelayMs } = this.config.current.retry;
      if (job.attempt < attempts) {
        this.schedule({ event: job.event, attempt: job.attempt + 1 }, baseDelayMs * 2 ** (job.attempt - 1));
      } else {
        this.counts.exhausted += 1;
        this.log.warn({ eventId: job.event.id, type: job.event.type, attempts }, 'webhook delivery gave up after every attempt');
      }
    } finally {
      this.busy -= 1;
      this.schedulePump();
      this.settleIdleWaiters();
    }
  }

  private send(event: EmulatorEvent, label: string): Promise<DeliveryOutcome> {
    const controller = new AbortController();
    const sent = this.post(event, label, controller).finally(() => this.inFlight.delete(controller));
    this.inFlight.set(controller, sent);
    return sent;
  }

  private async post(event: EmulatorEvent, label: string, controller: AbortController): Promise<DeliveryOutcome> {
    const { webhookUrl, webhookSecrets, timeoutMs } = this.config.current;
    const started = performance.now();
    const outcome: DeliveryOutcome = { eventId: event.id, ok: false, status: null, error: undefined, durationMs: 0 };
    if (webhookUrl === undefined) {
      outcome.error = 'no webhook URL is configured';
      return outcome;
    }
    // Stripe sends pretty-printed JSON: a receiver that verifies re-serialized JSON instead of the
    // raw bytes fails here as it would in production.
    const payload = JSON.stringify(event, null, 2);
    // Each attempt is signed anew with the current time, as Stripe does, so retries pass the
    // receiver's timestamp tolerance.
    const signature = signatureHeader(payload, webhookSecrets, Math.floor(Date.now() / 1000));
    const timeout = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    this.counts.attempted += 1;
    try {
      const response = await fetch(webhookUrl, {
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
    if (outcome.ok) {
      this.counts.succeeded += 1;
      event.pending_webhooks = 0;
      this.log.debug({ eventId: event.id, type: event.type, status: outcome.status, label }, 'webhook delivered');
    } else {
      this.counts.failed += 1;
      this.log.warn(
        { eventId: event.id, type: event.type, status: outcome.status, error: outcome.error, label },
        'webhook delivery failed',
      );
    }
    return outcome;
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
