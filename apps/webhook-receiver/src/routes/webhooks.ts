import {
  MAX_EVENT_DEPTH,
  eventOutOfScope,
  isHandledEventType,
  nestedDeeperThan,
  stripeEventEnvelopeSchema,
  stripeEventJobData,
  stripeEventJobOptions,
  type Stripe,
  type StripeScope,
} from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import { addJobOnce, requeueIfFailed } from '../enqueue.js';
import { HttpError } from '../errors.js';
import { verifyStripeSignature } from '../stripe-signature.js';

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

/**
 * `POST /webhooks/stripe`: verify the signature on the raw bytes, then queue the event under its
 * own id and answer 2xx only once Redis has it. https://docs.stripe.com/webhooks#verify-events
 */
export default async function webhookRoutes(app: FastifyInstance, options: WebhookRouteOptions) {
  const tolerance = options.toleranceSeconds ?? 300;
  const scope = options.scope ?? { livemode: false, connectedAccounts: new Set<string>() };
  const { signature: signatureVerifier } = options.stripe.webhooks;
  if (!signatureVerifier) throw new Error('this stripe SDK build has no webhook signature verifier');

  // Scoped to this plugin: the signature covers the exact bytes, so nothing may parse them first.
  // Stripe sends application/json (with a charset); any other type is answered 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_request, body, done) => done(null, body));

  // This route logs one line per delivery itself instead of Fastify's two per request (at full
  // ingest speed the logging was a large share of the route's CPU); warnings and errors still show.
  app.post('/webhooks/stripe', { bodyLimit: options.bodyLimit, logLevel: 'warn' }, async (request, reply) => {
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

    const check = verifyStripeSignature(signatureVerifier, raw, header, options.webhookSecrets, tolerance, Date.now() / 1000);
    if (!check.ok) return reject(check.reason, check.message);
    metrics.webhooksVerified.inc();

    let event: unknown;
    try {
      event = JSON.parse(raw.toString('utf8'));
    } catch {
      reject('invalid_json', 'The body is not valid JSON.');
    }
    if (nestedDeeperThan(event, MAX_EVENT_DEPTH)) return reject('not_an_event', `The body nests more than ${MAX_EVENT_DEPTH} levels deep.`);
    // The envelope the worker will parse, checked with the same schema before anything is queued.
    const envelope = stripeEventEnvelopeSchema.safeParse(event);
    if (!envelope.success) {
      const issue = envelope.error.issues[0];
      return reject('not_an_event', `The body is not a Stripe event: ${issue ? `${issue.path.join('.') || 'body'} ${issue.message}` : 'invalid'}.`);
    }
    const stripeEvent = envelope.data;
    // Plain fields rather than a child logger per request: this is the hottest route.
    const logFields = { reqId: request.id, eventId: stripeEvent.id, eventType: stripeEvent.type };

    // Another mode's or another connected account's event (a shared endpoint, a misrouted CLI
    // forward): acknowledged so Stripe stops resending, never applied.
    const outOfScope = eventOutOfScope(stripeEvent, scope);
    if (outOfScope) {
      metrics.webhooksNotOurs.inc({ reason: outOfScope });
      app.log.warn({ ...logFields, reason: outOfScope, livemode: stripeEvent.livemode, account: stripeEvent.account }, 'event is not this deployment\'s; acknowledged, not applied');
      return reply.code(200).send({ received: true, ignored: true });
    }

    if (!isHandledEventType(stripeEvent.type)) {
      metrics.webhooksIgnored.inc({ type: stripeEvent.type });
      app.log.info(logFields, 'event type not handled; acknowledged');
      return reply.code(200).send({ received: true, ignored: true });
    }

    const queue = app.queues.stripeEvents;
    const { duplicate, failed } = await addJobOnce(queue, stripeEvent.type, stripeEventJobData(stripeEvent), stripeEventJobOptions(stripeEvent.id, options.jobBackoffMs));
    // A resend (Stripe's retry, or "Resend" in the Dashboard) of an event whose job failed for good
    // runs it again: the failed job is the only copy, and adding under its id does nothing.
    const requeued = failed ? await requeueIfFailed(queue, stripeEvent.id) : false;
    if (duplicate) metrics.webhooksDuplicate.inc();
    app.log.info({ ...logFields, duplicate, ...(requeued ? { requeued } : {}) }, requeued ? 'failed event queued again' : 'event queued');
    return reply.code(200).send(duplicate ? { received: true, duplicate: true, ...(requeued ? { requeued: true } : {}) } : { received: true });
  });
}
