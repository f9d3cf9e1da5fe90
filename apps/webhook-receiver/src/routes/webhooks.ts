import {
  EVENT_GENERATION_FAILURE_RESOLVED,
  MAX_EVENT_DEPTH,
  eventOutOfScope,
  paymentSyncJobId,
  thinEventSchema,
  isHandledEventType,
  nestedDeeperThan,
  stripeEventEnvelopeSchema,
  stripeEventJobData,
  tracing,
  type Stripe,
  type StripeScope,
  type ThinEvent,
  type Tracing,
} from '@ledger/shared';
import type { SwaggerTransform } from '@fastify/swagger';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { jsonSchemaTransform, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requeueIfFailed } from '../enqueue.js';
import { HttpError } from '../errors.js';
import { errorResponse, internalError, unavailable } from '../http-schemas.js';
import { verifyStripeSignature } from '../stripe-signature.js';
import { addJob } from '../tracing.js';

export interface WebhookRouteOptions {
  stripe: Stripe;
  /** Any of them verifies (secret rotation). */
  webhookSecrets: string[];
  bodyLimit: number;
  /** Which events are this deployment's; default: test mode, no connected accounts. */
  scope?: StripeScope;
  /** Seconds a signature's timestamp may differ from now (Stripe's default: 300). */
  toleranceSeconds?: number;
  /** Base delay of the event jobs' exponential backoff. */
  jobBackoffMs?: number;
}

const acknowledged = z
  .object({
    received: z.literal(true),
    duplicate: z.literal(true).optional().describe('The event was already queued (a resend)'),
    requeued: z.literal(true).optional().describe('A resend of an event whose job had failed for good: it runs again'),
    ignored: z.literal(true).optional().describe("An event type the worker does not apply, or another mode's or account's event"),
    thin: z.literal(true).optional().describe('A thin event (API v2): acknowledged; a generation failure queues a recovery'),
  })
  .meta({ description: 'Verified and durably queued (or acknowledged without queueing: `ignored`)' });

const webhookSchema = {
  tags: ['webhooks'],
  operationId: 'receiveStripeEvent',
  summary: 'Stripe event delivery',
  description: 'Verified on the raw body against every configured secret; queued under the event id. 2xx only once durably queued.',
  response: {
    200: acknowledged,
    400: errorResponse('Missing or invalid signature, a timestamp outside the tolerance, or a body that is not a Stripe event'),
    413: errorResponse('Body over the webhook body limit'),
    415: errorResponse('Content type other than application/json'),
    ...unavailable,
    ...internalError,
  },
};

/**
 * What the request looks like, for the document only: Fastify must not validate it, since the
 * signature covers the raw bytes and is checked first; the handler then parses the envelope with
 * this same schema.
 */
const documentRequest: SwaggerTransform = (document) =>
  jsonSchemaTransform({
    ...document,
    schema: {
      ...document.schema,
      headers: z.looseObject({ 'stripe-signature': z.string().describe('`t=…,v1=…`, made with one of the webhook secrets') }),
      body: stripeEventEnvelopeSchema,
    },
  });

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The logger of the one line per queued delivery: the app's, without its redaction (that line
     * holds ids, a type and flags only, and redaction's wildcard paths cost ~2× the line's CPU).
     * Warm-up silences it with the app's logger.
     */
    webhookDeliveryLog: FastifyBaseLogger;
  }
}

const isThin = (body: unknown) => typeof body === 'object' && body !== null && (body as { object?: unknown }).object === 'v2.core.event';

/**
 * `POST /webhooks/stripe`: verify the signature on the raw bytes, then queue the event under its
 * own id and answer 2xx only once Redis has it. https://docs.stripe.com/webhooks#verify-events
 */
export default async function webhookRoutes(fastify: FastifyInstance, options: WebhookRouteOptions) {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const deliveryLog = fastify.webhookDeliveryLog;
  const tolerance = options.toleranceSeconds ?? 300;
  const scope = options.scope ?? { livemode: false, connectedAccounts: new Set<string>() };
  const { signature: signatureVerifier } = options.stripe.webhooks;
  if (!signatureVerifier) throw new Error('this stripe SDK build has no webhook signature verifier');

  // Scoped to this plugin: the signature covers the exact bytes, so nothing may parse them first.
  // Stripe sends application/json (with a charset); any other type is answered 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_request, body, done) =>
    done(null, body),
  );

  // This route logs one line per delivery itself instead of Fastify's two per request (at full
  // ingest speed the logging was a large share of the route's CPU); warnings and errors still show.
  const routeOptions = {
    bodyLimit: options.bodyLimit,
    logLevel: 'warn',
    schema: webhookSchema,
    config: { swaggerTransform: documentRequest },
    // The answers are a few fixed shapes (test/openapi.test.ts proves them against the schema), so
    // the hottest route serializes them as it did without a schema, with no per-request zod pass.
    serializerCompiler: () => (data: unknown) => JSON.stringify(data),
  } as const;
  // A thin event (Event Destinations) carries no object: acknowledged and counted, never refused.
  // `v2.core.health.event_generation_failure.resolved` queues a recovery (the maintenance
  // worker asks Stripe what it names and reconciles); one about a PaymentIntent queues a sync.
  const acknowledgeThin = async (thin: ThinEvent, reqId: string) => {
    app.metrics.webhooksThin.inc({ type: thin.type });
    const fields = { reqId, eventId: thin.id, eventType: thin.type };
    const outOfScope = eventOutOfScope({ livemode: thin.livemode, account: thin.context ?? null }, scope);
    if (outOfScope) {
      app.metrics.webhooksNotOurs.inc({ reason: outOfScope });
      app.log.warn({ ...fields, reason: outOfScope }, "thin event is not this deployment's; acknowledged, not applied");
      return { received: true, thin: true, ignored: true } as const;
    }
    if (thin.type === EVENT_GENERATION_FAILURE_RESOLVED) {
      const created = thin.created ? Math.floor(Date.parse(thin.created) / 1000) : Number.NaN;
      const { duplicate } = await addJob(app.queues, 'eventRecovery', {
        name: 'event-generation-failure',
        jobId: thin.id,
        data: { eventId: thin.id, created: Number.isFinite(created) && created > 0 ? created : Math.floor(Date.now() / 1000) },
      });
      app.log.warn({ ...fields, duplicate }, 'Stripe failed to generate some events: a recovery pass is queued');
      return duplicate ? ({ received: true, thin: true, duplicate: true } as const) : ({ received: true, thin: true } as const);
    }
    const related = thin.related_object;
    if (related?.type === 'payment_intent' && /^pi_[A-Za-z0-9_]+$/.test(related.id)) {
      await addJob(app.queues, 'paymentSync', {
        name: 'reconcile',
        jobId: paymentSyncJobId(related.id),
        data: { paymentIntentId: related.id, reason: 'reconcile' },
      });
      app.log.info(fields, 'thin event about a PaymentIntent: a sync is queued');
      return { received: true, thin: true } as const;
    }
    app.log.info(fields, 'thin event acknowledged');
    return { received: true, thin: true, ignored: true } as const;
  };

  app.post('/webhooks/stripe', routeOptions, async (request, reply) => {
    const { metrics } = app;
    metrics.webhooksReceived.inc();
    const reject = (reason: string, message: string): never => {
      metrics.webhooksRejected.inc({ reason });
      app.log.info({ reqId: request.id, reason }, 'webhook rejected');
      throw new HttpError(400, reason, message);
    };

    const header = request.headers['stripe-signature'];
    if (typeof header !== 'string' || header.length === 0) return reject('missing_signature', 'The Stripe-Signature header is missing.');
    const raw = Buffer.isBuffer(request.body) ? request.body : undefined;
    if (!raw || raw.length === 0) return reject('empty_body', 'The request has no body.');

    const verifySpan = tracing?.tracer.startSpan('stripe.webhook.verify');
    const check = verifyStripeSignature(signatureVerifier, raw, header, options.webhookSecrets, tolerance, Date.now() / 1000);
    verifySpan?.setAttribute('stripe.signature.valid', check.ok).end();
    if (!check.ok) return reject(check.reason, check.message);
    metrics.webhooksVerified.inc();

    let event: unknown;
    try {
      event = JSON.parse(raw.toString('utf8'));
    } catch {
      reject('invalid_json', 'The body is not valid JSON.');
    }
    if (nestedDeeperThan(event, MAX_EVENT_DEPTH)) return reject('not_an_event', `The body nests more than ${MAX_EVENT_DEPTH} levels deep.`);
    if (isThin(event)) {
      const thin = thinEventSchema.safeParse(event);
      if (!thin.success)
        return reject('not_an_event', `The body is not a thin event: ${thin.error.issues[0]?.path.join('.') ?? 'body'} invalid.`);
      return reply.code(200).send(await acknowledgeThin(thin.data, request.id));
    }
    // The envelope the worker will parse, checked with the same schema before anything is queued.
    const envelope = stripeEventEnvelopeSchema.safeParse(event);
    if (!envelope.success) {
      const issue = envelope.error.issues[0];
      return reject(
        'not_an_event',
        `The body is not a Stripe event: ${issue ? `${issue.path.join('.') || 'body'} ${issue.message}` : 'invalid'}.`,
      );
    }
    const stripeEvent = envelope.data;
    // Plain fields rather than a child logger per request: this is the hottest route. The order
    // and account are those our PaymentIntents name in metadata; undefined fields (the trace id
    // with tracing off) are left out of the line.
    const metadata = stripeEvent.data.object.metadata as { order_id?: unknown; account_id?: unknown } | null | undefined;
    const logFields = {
      reqId: request.id,
      eventId: stripeEvent.id,
      eventType: stripeEvent.type,
      orderId: typeof metadata?.order_id === 'string' ? metadata.order_id : undefined,
      accountId: typeof metadata?.account_id === 'string' ? metadata.account_id : undefined,
      traceId: tracing ? tracedEvent(tracing, stripeEvent.id, stripeEvent.type) : undefined,
    };

    // Another mode's or another connected account's event (a shared endpoint, a misrouted CLI
    // forward): acknowledged so Stripe stops resending, never applied.
    const outOfScope = eventOutOfScope(stripeEvent, scope);
    if (outOfScope) {
      metrics.webhooksNotOurs.inc({ reason: outOfScope });
      app.log.warn(
        { ...logFields, reason: outOfScope, livemode: stripeEvent.livemode, account: stripeEvent.account },
        "event is not this deployment's; acknowledged, not applied",
      );
      return reply.code(200).send({ received: true, ignored: true });
    }

    if (!isHandledEventType(stripeEvent.type)) {
      metrics.webhooksIgnored.inc({ type: stripeEvent.type });
      app.log.info(logFields, 'event type not handled; acknowledged');
      return reply.code(200).send({ received: true, ignored: true });
    }

    const job = { name: stripeEvent.type, jobId: stripeEvent.id, data: stripeEventJobData(stripeEvent), backoffMs: options.jobBackoffMs };
    const { duplicate, failed } = await addJob(app.queues, 'stripeEvents', job, { 'stripe.event.id': stripeEvent.id });
    // A resend (Stripe's retry, or "Resend" in the Dashboard) of an event whose job failed for good
    // runs it again: the failed job is the only copy, and adding under its id does nothing.
    const requeued = failed ? await requeueIfFailed(app.queues.stripeEvents, stripeEvent.id) : false;
    if (duplicate) metrics.webhooksDuplicate.inc();
    deliveryLog.info(
      { ...logFields, duplicate, ...(requeued ? { requeued } : {}) },
      requeued ? 'failed event queued again' : 'event queued',
    );
    return reply
      .code(200)
      .send(duplicate ? { received: true, duplicate: true, ...(requeued ? { requeued: true } : {}) } : { received: true });
  });
}

/** Names the event on the delivery's span; returns its trace id, for the delivery's log lines. */
function tracedEvent(tracing: Tracing, eventId: string, eventType: string): string | undefined {
  const span = tracing.api.trace.getActiveSpan();
  span?.setAttributes({ 'stripe.event.id': eventId, 'stripe.event.type': eventType });
  return span?.spanContext().traceId;
}
