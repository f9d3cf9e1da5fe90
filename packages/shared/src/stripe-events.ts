import { z } from 'zod';
import { jobTraceSchema } from './tracing.js';

// Stripe's event envelope as this system reads it: which event types it applies, the envelope the
// receiver checks before queueing, and the compact job payload a verified event becomes.

/**
 * Event types the worker applies. Anything else is acknowledged by the receiver and counted, never
 * enqueued. https://docs.stripe.com/api/events/types
 */
export const HANDLED_EVENT_TYPES = [
  'payment_intent.succeeded',
  'payment_intent.processing',
  'payment_intent.payment_failed',
  'payment_intent.canceled',
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'charge.refunded',
  'refund.created',
  'refund.updated',
  'refund.failed',
  'charge.refund.updated',
  'charge.dispute.created',
  'charge.dispute.updated',
  'charge.dispute.closed',
  'charge.dispute.funds_withdrawn',
  'charge.dispute.funds_reinstated',
] as const;

export type HandledEventType = (typeof HANDLED_EVENT_TYPES)[number];

const handledTypes = new Set<string>(HANDLED_EVENT_TYPES);
export function isHandledEventType(type: string): type is HandledEventType {
  return handledTypes.has(type);
}

const eventId = z.string().regex(/^evt_[A-Za-z0-9_]{1,250}$/, 'must be an event id (evt_…)');
const unixSeconds = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** A plain JSON object: Stripe objects are never arrays. */
const stripeObject = z.record(z.string(), z.unknown());

/** A webhook body as Stripe sends it: the envelope the receiver checks before queueing anything. */
export const stripeEventEnvelopeSchema = z.object({
  id: eventId,
  object: z.literal('event'),
  type: z.string().min(1).max(100),
  created: unixSeconds,
  livemode: z.boolean().default(false),
  /** Set on events of a connected account (Stripe Connect). */
  account: z.string().max(255).nullish(),
  data: z.object({ object: stripeObject }),
});
export type StripeEventEnvelope = z.infer<typeof stripeEventEnvelopeSchema>;

/**
 * A thin event (Stripe's Event Destinations, API v2): a notification without the object, which
 * is fetched when needed. `created` is an ISO 8601 string; `context` names a connected account.
 * https://docs.stripe.com/api/v2/core/events/object
 */
export const thinEventSchema = z.object({
  id: eventId,
  object: z.literal('v2.core.event'),
  type: z.string().min(1).max(200),
  created: z.string().max(64).nullish(),
  livemode: z.boolean().default(false),
  context: z.string().max(255).nullish(),
  related_object: z.object({ id: z.string().max(255), type: z.string().max(100), url: z.string().max(2_000).nullish() }).nullish(),
});
export type ThinEvent = z.infer<typeof thinEventSchema>;

/**
 * Stripe failed to generate some events (they will never be delivered nor listed) and says so
 * once the failure is over. https://docs.stripe.com/webhooks/handle-irrecoverable-events
 */
export const EVENT_GENERATION_FAILURE_RESOLVED = 'v2.core.health.event_generation_failure.resolved';

/**
 * A Stripe event as queued: what the worker needs and nothing else ({@link compactStripeObject};
 * the signature never leaves the receiver).
 */
export const stripeEventJobSchema = z.object({
  id: eventId,
  type: z.string(),
  /** Stripe's `created`, unix seconds. */
  created: unixSeconds,
  livemode: z.boolean(),
  account: z.string().optional(),
  object: stripeObject,
  /** The webhook delivery's trace context (tracing on only). */
  trace: jobTraceSchema,
});
export type StripeEventJob = z.infer<typeof stripeEventJobSchema>;

/** Deepest nesting of a Stripe event we accept; real ones stay far below (expanded objects included). */
export const MAX_EVENT_DEPTH = 64;

/**
 * Whether `value` nests objects or arrays deeper than `maxDepth`. Iterative: a signed body nested
 * thousands of levels deep must be answered 400, not overflow the stack of a recursive walk (the
 * job's JSON serialization is recursive too).
 */
export function nestedDeeperThan(value: unknown, maxDepth: number): boolean {
  const stack: { node: unknown; depth: number }[] = [{ node: value, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { node, depth } = item;
    if (node === null || typeof node !== 'object') continue;
    if (depth >= maxDepth) return true;
    for (const child of Object.values(node)) stack.push({ node: child, depth: depth + 1 });
  }
  return false;
}

/** Fields of a Stripe object the worker reads (apps/order-worker/src/facts/from-event.ts); a test checks nothing else is needed. */
const OBJECT_FIELDS = [
  'id',
  'object',
  'amount',
  'amount_received',
  'amount_total',
  'currency',
  'status',
  'mode',
  'payment_status',
] as const;
/** Metadata the worker reads: the order and account this system wrote when it created the PaymentIntent. */
const METADATA_FIELDS = ['order_id', 'account_id'] as const;

function pick(source: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const field of fields) if (field in source) picked[field] = source[field];
  return picked;
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
/** An expandable field (an id, or the expanded object) as its id. */
const idOf = (value: unknown) => (isObject(value) && 'id' in value ? value.id : value);

/**
 * What a job keeps of a Stripe object: the fields the worker reads, nothing else. Jobs stay small
 * (Redis memory follows the backlog times the job size), and nothing the worker does not need —
 * client secrets, customer details — is ever written to Redis.
 */
export function compactStripeObject(object: Record<string, unknown>): Record<string, unknown> {
  const compact = pick(object, OBJECT_FIELDS);
  if ('payment_intent' in object) compact.payment_intent = idOf(object.payment_intent);
  if (isObject(object.metadata)) compact.metadata = pick(object.metadata, METADATA_FIELDS);
  const refunds = isObject(object.refunds) ? object.refunds : undefined;
  if (refunds && Array.isArray(refunds.data)) {
    compact.refunds = {
      data: refunds.data.filter(isObject).map((refund) => ({
        ...pick(refund, OBJECT_FIELDS),
        ...('payment_intent' in refund ? { payment_intent: idOf(refund.payment_intent) } : {}),
      })),
      ...(typeof refunds.has_more === 'boolean' ? { has_more: refunds.has_more } : {}),
    };
  }
  // A dispute's balance transactions: only which way each moved the money.
  if (Array.isArray(object.balance_transactions)) {
    compact.balance_transactions = object.balance_transactions
      .filter(isObject)
      .map((transaction) => pick(transaction, ['amount', 'reporting_category']));
  }
  // A Checkout Session paid in the customer's currency (Adaptive Pricing), at either side of basil.
  if (isObject(object.presentment_details)) compact.presentment_details = pick(object.presentment_details, ['presentment_currency']);
  if (isObject(object.currency_conversion)) compact.currency_conversion = pick(object.currency_conversion, ['source_currency']);
  return compact;
}

/** The job payload for a verified event. */
export function stripeEventJobData(event: {
  id: string;
  type: string;
  created: number;
  livemode: boolean;
  account?: string | null;
  data: { object: object };
}): StripeEventJob {
  return {
    id: event.id,
    type: event.type,
    created: event.created,
    livemode: event.livemode,
    ...(event.account ? { account: event.account } : {}),
    object: compactStripeObject(event.data.object as Record<string, unknown>),
  };
}
