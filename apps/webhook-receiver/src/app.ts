import { randomUUID } from 'node:crypto';
import { tracing, type Logger, type Stripe, type StripeScope } from '@ledger/shared';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { documentComponents, validationError } from './http-schemas.js';
import type { OrdersAuthConfig } from './orders-auth.js';
import errorHandler from './plugins/error-handler.js';
import metrics from './plugins/metrics.js';
import orderStatusListener from './plugins/order-status-listener.js';
import ordersService from './plugins/orders-service.js';
import prisma from './plugins/prisma.js';
import queues from './plugins/queues.js';
import rateLimits, { type RateLimitSettings } from './plugins/rate-limits.js';
import adminRoutes from './routes/admin.js';
import healthRoutes from './routes/health.js';
import orderRoutes from './routes/orders.js';
import reviewRoutes from './routes/reviews.js';
import spendingRoutes from './routes/spending.js';
import webhookRoutes from './routes/webhooks.js';
import { tracedRoute } from './tracing.js';

/** Everything the receiver needs, parsed from the environment by `server.ts` or given by a test. */
export interface ReceiverConfig {
  databaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  stripe: Stripe;
  /** Which events are this deployment's (its key's mode, the connected accounts it serves). */
  stripeScope?: StripeScope;
  /** One or more `whsec_…` secrets; a signature valid under any of them is accepted. */
  webhookSecrets: string[];
  adminToken: string | undefined;
  /** Who may call the orders API (service keys, end users' JWTs); separate from the admin token. */
  ordersAuth: OrdersAuthConfig;
  rateLimits: RateLimitSettings;
  /** Bull Board's retry / clean / delete actions (read-only otherwise). */
  bullBoardWrite: boolean;
  /** Fastify's trustProxy: whose X-Forwarded-For gives the client address the per-address limit counts. */
  trustProxy?: boolean | string[];
  webhookBodyLimit: number;
  logger: Logger;
  /** Base delay of job retries (tests shorten it). */
  jobBackoffMs?: number;
}

/** Who may call what; routes name these in their `security`. */
const SECURITY_SCHEMES = {
  admin: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN (basic-auth password also accepted); never an orders credential' },
  userJwt: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      "An end user's JWT: HS256 (ORDERS_JWT_SECRET), RS256/ES256 (ORDERS_JWT_PUBLIC_KEY[_FILE] or ORDERS_JWKS_FILE). `sub` is the account id; `exp` required; `nbf`, and `iss`/`aud` when configured, checked. Acts for its own account only.",
  },
  serviceKey: {
    type: 'http',
    scheme: 'bearer',
    description: "A service key from ORDERS_API_KEYS (the merchant's backend): acts for any account, named in the body's accountId.",
  },
} as const;

/** Builds the receiver without listening: `server.ts` listens, tests use `app.inject`. */
export async function buildApp(config: ReceiverConfig): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: config.logger as FastifyBaseLogger,
    // Request ids on every log line and error answer; a caller's own X-Request-Id is kept only if
    // it looks like an id (it is echoed in headers and logs).
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : `req_${randomUUID()}`;
    },
    // Errors Fastify meets before routing (an undecodable URL, a path parameter over the router's
    // limit) get the same `{error, message, requestId}` answer as every other error.
    frameworkErrors: (error, request, reply) => {
      const statusCode = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      (reply as FastifyReply)
        .code(statusCode)
        .send({ error: statusCode === 414 ? 'uri_too_long' : 'bad_request', message: error.message, requestId: request.id });
    },
    // JSON bodies beyond the webhook route are small; the webhook route sets its own limit.
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    trustProxy: config.trustProxy ?? false,
    // A route's zod schema that refuses the input answers 400 {error: "invalid_request", message}.
    schemaErrorFormatter: validationError,
  });
  // Each route's zod schemas validate its input and serialize its answers (fastify-type-provider-zod).
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  await app.register(errorHandler);
  // OpenAPI of the routes at /docs (JSON at /docs/json), made from the routes' own zod schemas;
  // registered before any route so that it sees them all (Bull Board and the UI hide themselves).
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Stripe exactly-once ledger',
        version: '0.1.0',
        description:
          'Credit top-up orders paid through Stripe; every payment credits its account exactly once. Money is integer minor units.',
      },
      tags: [
        { name: 'webhooks', description: 'Stripe event delivery' },
        {
          name: 'orders',
          description: "Top-up orders, for the order's own account (a user's JWT) or the merchant's backend (a service key)",
        },
        {
          name: 'spending',
          description:
            "Debits and holds by the merchant's backend (service keys), exactly once per reference and never beyond what is available; balances (also for an end user's own account)",
        },
        { name: 'admin', description: 'Money views and review resolutions, behind ADMIN_TOKEN' },
        { name: 'operations', description: 'Health, readiness and metrics' },
      ],
      components: { securitySchemes: SECURITY_SCHEMES },
    },
    transform: jsonSchemaTransform,
    transformObject: documentComponents,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(prisma, { databaseUrl: config.databaseUrl });
  await app.register(queues, { redisUrl: config.redisUrl, prefix: config.queuePrefix });
  await app.register(metrics, { stripe: config.stripe });
  await app.register(rateLimits, { redisUrl: config.redisUrl, prefix: config.queuePrefix, ...config.rateLimits });
  await app.register(orderStatusListener, { databaseUrl: config.databaseUrl });

  await app.register(healthRoutes);
  // With tracing on, every API request after this point (webhooks, orders, spending, reviews; not
  // health, metrics or Bull Board's UI, which are polled) runs in a span (tracing.ts); off, no hook
  // and no wrapper: the handlers are registered as they are.
  if (tracing) {
    const on = tracing;
    app.addHook('onRoute', (route) => {
      if (!route.url.startsWith('/admin/queues')) route.handler = tracedRoute(on, route.url, route.handler);
    });
  }
  app.decorate('webhookDeliveryLog', app.log.child({}, { redact: { paths: [] } }));
  await app.register(webhookRoutes, {
    stripe: config.stripe,
    webhookSecrets: config.webhookSecrets,
    ...(config.stripeScope ? { scope: config.stripeScope } : {}),
    bodyLimit: config.webhookBodyLimit,
    jobBackoffMs: config.jobBackoffMs,
  });
  await app.register(ordersService, { stripe: config.stripe, jobBackoffMs: config.jobBackoffMs });
  await app.register(orderRoutes, { auth: config.ordersAuth });
  await app.register(spendingRoutes, { auth: config.ordersAuth });
  await app.register(adminRoutes, { adminToken: config.adminToken, bullBoardWrite: config.bullBoardWrite });
  await app.register(reviewRoutes, { adminToken: config.adminToken });

  app.addHook('onSend', async (request, reply) => {
    reply.header('request-id', request.id);
  });
  return app;
}
