import {
  isHandledEventType,
  stripeEventEnvelopeSchema,
  stripeEventJobData,
  stripeEventJobOptions,
  type Stripe,
} from '@ledger/shared';
import type { FastifyInstance } from 'fastify';
import { addJobOnce } from '../enqueue.js';
import { HttpError } from '../errors.js';

export interface WebhookRouteOptions {
  stripe: Stripe;
  /** Any of them verifies (secret rotation). */
  webhookSecrets: string[];
  bodyLimit: number;
  /** Seconds a signature's timestamp may differ from now (Stripe's default: 300). */
  toleranceSeconds?: number;
  /** Base delay of the event jobs' exponential backoff. */
  jobBackoffMs?: number;
}

/** The signed timestamp (`t=`) of a Stripe-Signature header. */
function signedTimestamp(header: string): number | undefined {
  const match = /(?:^|,)\s*t=(\d+)/.exec(header);
  return match?.[1] ? Number(match[1]) : undefined;
}

/**
 * `POST /webhooks/stripe`: verify the signature on the raw bytes, then queue the event under its
 * own id and answer 2xx only once Redis has it. https://docs.stripe.com/webhooks#verify-events
 */
export default async function webhookRoutes(app: FastifyInstance, options: WebhookRouteOptions) {
  const tolerance = options.toleranceSeconds ?? 300;
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
    const signature = header;
    const raw = Buffer.isBuffer(request.body) ? request.body : undefined;
    if (!raw || raw.length === 0) return reject('empty_body', 'The request has no body.');

    let verified = false;
    let stale = false;
    let lastError = 'No signature matches any configured webhook secret.';
    for (const secret of options.webhookSecrets) {
      try {
        signatureVerifier.verifyHeader(raw, signature, secret, tolerance);
        verified = true;
        break;
      } catch (error) {
        const message = error instanceof Error ? (error.message.split('\n')[0] ?? lastError) : lastError;
        // The SDK checks the signature before the timestamp: this secret matched, the time did not.
        if (/tolerance/i.test(message)) stale = true;
        else lastError = message;
      }
    }
    if (!verified) {
      if (stale) reject('timestamp_out_of_tolerance', 'The signature timestamp is outside the tolerance window.');
      reject('invalid_signature', lastError.trim());
    }
    // The SDK only rejects old timestamps; a signature from the future is as suspect as a stale one.
    const timestamp = signedTimestamp(signature);
    if (timestamp === undefined || timestamp - Date.now() / 1000 > tolerance) {
      reject('timestamp_out_of_tolerance', 'The signature timestamp is outside the tolerance window.');
    }
    metrics.webhooksVerified.inc();

    let event: unknown;
    try {
      event = JSON.parse(raw.toString('utf8'));
    } catch {
      reject('invalid_json', 'The body is not valid JSON.');
    }
    // The envelope the worker will parse, checked with the same schema before anything is queued.
    const envelope = stripeEventEnvelopeSchema.safeParse(event);
    if (!envelope.success) {
      const issue = envelope.error.issues[0];
      return reject('not_an_event', `The body is not a Stripe event: ${issue ? `${issue.path.join('.') || 'body'} ${issue.message}` : 'invalid'}.`);
    }
    const stripeEvent = envelope.data;
    // Plain fields rather than a child logger per request: this is the hottest route.
    const logFields = { reqId: request.id, eventId: stripeEvent.id, eventType: stripeEvent.type };

    if (!isHandledEventType(stripeEvent.type)) {
      metrics.webhooksIgnored.inc({ type: stripeEvent.type });
      app.log.info(logFields, 'event type not handled; acknowledged');
      return reply.code(200).send({ received: true, ignored: true });
    }

    const { duplicate } = await addJobOnce(
      app.redis,
      app.queues.stripeEvents,
      stripeEvent.type,
      stripeEventJobData(stripeEvent),
      stripeEventJobOptions(stripeEvent.id, options.jobBackoffMs),
    );
    if (duplicate) metrics.webhooksDuplicate.inc();
    app.log.info({ ...logFields, duplicate }, 'event queued');
    return reply.code(200).send(duplicate ? { received: true, duplicate: true } : { received: true });
  });
}
