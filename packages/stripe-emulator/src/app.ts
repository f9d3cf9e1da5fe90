import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { ConfigError, ConfigStore, type DeliveryKnobs } from './config.js';
import { createController, type StripeEmulatorController } from './controller.js';
import { StripeApiError, invalidRequest } from './errors.js';
import { registerApiFaults } from './faults.js';
import { parseStripeParams } from './form.js';
import { IdempotencyCache } from './idempotency.js';
import { newId } from './ids.js';
import { PaymentFlows } from './payments.js';
import { apiRoutes, v2Routes } from './routes/api.js';
import { controlRoutes } from './routes/controls.js';
import { EmulatorStore } from './store.js';
import { ThinEventLog } from './thin-events.js';
import { WebhookDispatcher, eventDelivery } from './webhooks.js';

export { ConfigError, type DeliveryKnobs, type PublicConfig } from './config.js';
export type { EmulatorStats, StripeEmulatorController } from './controller.js';
export { StripeApiError } from './errors.js';
export type { ControlResult } from './payments.js';
export type { EmulatorEvent } from './store.js';
export type { ThinEvent, ThinEventNotification } from './thin-events.js';
export { isBefore } from './versions.js';
export { signatureHeader, type DeliveryOutcome, type EndpointDeliveryStats } from './webhooks.js';

/**
 * Options of {@link buildStripeEmulator}: the knobs (`apiVersion`, the account's default version, is
 * one: default the version the installed stripe SDK sends), plus the logger.
 */
export interface StripeEmulatorOptions extends DeliveryKnobs {
  /** A pino logger to log through, `true` for Fastify's own, `false` (default) for none. */
  logger?: FastifyBaseLogger | boolean;
}

/** A built emulator: the server (not listening yet) and the handle tests drive it with. */
export interface StripeEmulator {
  app: FastifyInstance;
  controller: StripeEmulatorController;
}

/**
 * Builds a Stripe emulator: the `/v1` API this system calls (PaymentIntents, events, idempotent
 * requests), signed webhook deliveries with Stripe's retry behaviour and chaos knobs, and
 * `/_emulator` controls to pay, fail, refund and dispute payments. State is in memory.
 * `app.close()` stops every timer and aborts deliveries in flight.
 *
 * @throws ConfigError when a knob is invalid.
 */
export function buildStripeEmulator(options: StripeEmulatorOptions = {}): StripeEmulator {
  const { logger = false, ...knobs } = options;
  const config = new ConfigStore(knobs);
  const app = Fastify({
    ...(typeof logger === 'boolean' ? { logger } : { loggerInstance: logger }),
    // Stripe's request ids (`req_…`) name every response and every log line.
    genReqId: () => newId('req', 14),
    requestIdHeader: false,
    routerOptions: { querystringParser: parseStripeParams },
  });

  const dispatcher = new WebhookDispatcher(config, app.log.child({ component: 'webhooks' }));
  const store = new EmulatorStore(
    () => config.current.apiVersion,
    (event) => dispatcher.enqueue(eventDelivery(event)),
  );
  const flows = new PaymentFlows(store);
  const thinEvents = new ThinEventLog();
  const controller = createController({ store, flows, dispatcher, config, thinEvents });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('Request-Id', request.id);
  });
  registerApiFaults(app);

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof StripeApiError) return reply.code(error.statusCode).send(error.toResponse());
    if (error instanceof ConfigError) return reply.code(400).send(invalidRequest(error.message).toResponse());
    // Fastify's own 4xx (bad JSON, unsupported content type, body too large) keep their status.
    if (error instanceof Error && 'statusCode' in error && typeof error.statusCode === 'number' && error.statusCode < 500) {
      return reply.code(error.statusCode).send({ error: { type: 'invalid_request_error', message: error.message } });
    }
    request.log.error({ err: error }, 'unexpected error');
    return reply.code(500).send({ error: { type: 'api_error', message: `An unexpected error occurred (request ${request.id}).` } });
  });

  app.setNotFoundHandler(async (request) => {
    throw new StripeApiError(404, {
      type: 'invalid_request_error',
      message: `Unrecognized request URL (${request.method}: ${request.url.split('?')[0]}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
    });
  });

  void app.register(apiRoutes, { prefix: '/v1', store, flows, idempotency: new IdempotencyCache() });
  void app.register(v2Routes, { prefix: '/v2', store, thinEvents });
  void app.register(controlRoutes, { prefix: '/_emulator', controller });

  // preClose, not onClose: an in-flight `/_emulator/events/:id/deliver` request waits on its
  // delivery, and the server only finishes closing once that request has been answered.
  app.addHook('preClose', async () => {
    await dispatcher.close();
  });

  return { app, controller };
}
