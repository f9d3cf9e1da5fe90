import { z } from 'zod';
import { newId } from './ids.js';
import { parseParams } from './params.js';
import type { Deliverable } from './webhooks.js';

// Stripe's v2 events (https://docs.stripe.com/api/v2/events): a destination gets a thin notification
// without data, signed like a v1 webhook, and fetches the full event from `GET /v2/core/events/:id`.

/** The irrecoverable-event alert's type (https://docs.stripe.com/webhooks/handle-irrecoverable-events). */
export const EVENT_GENERATION_FAILURE_RESOLVED = 'v2.core.health.event_generation_failure.resolved';

const relatedObjectSchema = z.strictObject({ id: z.string().min(1), type: z.string().min(1), url: z.string().min(1) });

/** `data` of `v2.core.health.event_generation_failure.resolved`; what is left out gets a placeholder. */
const eventGenerationFailureResolvedSchema = z.strictObject({
  alert_id: z.string().min(1).optional(),
  grouping_key: z.string().min(1).optional(),
  summary: z.string().min(1).optional(),
  resolved_at: z.iso.datetime().optional(),
  impact: z.strictObject({
    /** The v1 event type Stripe failed to generate, such as `payment_intent.succeeded`. */
    event_type: z.string().min(1),
    related_object: relatedObjectSchema.optional(),
    context: z.string().min(1).optional(),
  }),
});

/** Body of `POST /_emulator/thin_events`. */
export const thinEventInputSchema = z.strictObject({
  type: z.string().regex(/^v2\.[a-z0-9_.]+$/, 'must be a v2 event type such as v2.core.health.event_generation_failure.resolved'),
  data: z.record(z.string(), z.unknown()).optional(),
  related_object: relatedObjectSchema.nullish(),
});

/** A v2 event as `GET /v2/core/events/:id` returns it. */
export interface ThinEvent {
  id: string;
  object: 'v2.core.event';
  type: string;
  livemode: false;
  /** ISO 8601, as v2 APIs write times. */
  created: string;
  related_object: z.output<typeof relatedObjectSchema> | null;
  context: null;
  reason: null;
  data: Record<string, unknown>;
}

/** What a destination is sent: the event without `data`. */
export type ThinEventNotification = Omit<ThinEvent, 'data' | 'reason'>;

/** The v2 events recorded so far, and how each is delivered. */
export class ThinEventLog {
  private readonly events = new Map<string, { event: ThinEvent; delivery: Deliverable }>();

  /** Records an event; the result's `delivery` goes to the dispatcher. Throws a Stripe 400 on bad `data`. */
  record(input: z.output<typeof thinEventInputSchema>): { event: ThinEvent; delivery: Deliverable } {
    const now = new Date().toISOString();
    const event: ThinEvent = {
      id: newId('evt_test', 26),
      object: 'v2.core.event',
      type: input.type,
      livemode: false,
      created: now,
      related_object: input.related_object ?? null,
      context: null,
      reason: null,
      data: input.type === EVENT_GENERATION_FAILURE_RESOLVED ? eventGenerationFailureResolved(input.data, now) : (input.data ?? {}),
    };
    const { data: _data, reason: _reason, ...notification } = event;
    const body = JSON.stringify(notification satisfies ThinEventNotification, null, 2);
    const recorded = { event, delivery: { id: event.id, type: event.type, pendingEndpoints: new Set<string>(), payload: () => body } };
    this.events.set(event.id, recorded);
    return recorded;
  }

  /** The full event, or undefined. */
  find(id: string): ThinEvent | undefined {
    return this.events.get(id)?.event;
  }

  /** How the event is delivered (for a manual resend), or undefined. */
  delivery(id: string): Deliverable | undefined {
    return this.events.get(id)?.delivery;
  }
}

function eventGenerationFailureResolved(data: Record<string, unknown> | undefined, now: string): Record<string, unknown> {
  const parsed = parseParams(eventGenerationFailureResolvedSchema, data ?? {});
  return {
    alert_id: parsed.alert_id ?? newId('alert'),
    grouping_key: parsed.grouping_key ?? `event_generation_failure:${parsed.impact.event_type}`,
    summary: parsed.summary ?? `Stripe could not generate ${parsed.impact.event_type} events; the issue is resolved.`,
    resolved_at: parsed.resolved_at ?? now,
    impact: parsed.impact,
  };
}
