import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorSchema, internalError, unavailable } from '../http-schemas.js';
import { checkDependencies } from '../readiness.js';

const CHECK_TIMEOUT_MS = 1_000;

const checks = z.object({ postgres: z.enum(['ok', 'down']), redis: z.enum(['ok', 'down']) });

/** Liveness and readiness. Readiness fails when PostgreSQL or Redis cannot be reached. */
export default async function healthRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        operationId: 'getLiveness',
        summary: 'Liveness',
        response: { 200: z.object({ status: z.literal('ok') }).meta({ description: 'Alive' }), ...internalError, ...unavailable },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        operationId: 'getReadiness',
        summary: 'Readiness: PostgreSQL and Redis reachable',
        response: {
          200: z.object({ status: z.literal('ready'), checks }).meta({ description: 'Ready' }),
          503: errorSchema
            .extend({ checks })
            .meta({ description: 'PostgreSQL or Redis unreachable (`not_ready`, with what is down), or shutting down' }),
          ...internalError,
        },
      },
    },
    async (_request, reply) => {
      const status = await checkDependencies(fastify, CHECK_TIMEOUT_MS);
      if (status.postgres === 'ok' && status.redis === 'ok') return reply.code(200).send({ status: 'ready', checks: status });
      return reply.code(503).send({ error: 'not_ready', message: 'A dependency is unreachable.', checks: status });
    },
  );
}
