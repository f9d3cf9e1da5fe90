import { withTimeout } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';

const CHECK_TIMEOUT_MS = 1_000;

/** Liveness and readiness. Readiness fails when PostgreSQL or Redis cannot be reached. */
export default async function healthRoutes(app: FastifyInstance) {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const [postgres, redis] = await Promise.allSettled([
      withTimeout(app.prisma.$queryRaw`SELECT 1`, CHECK_TIMEOUT_MS),
      withTimeout(app.redis.ping(), CHECK_TIMEOUT_MS),
    ]);
    const checks = { postgres: postgres.status === 'fulfilled' ? 'ok' : 'down', redis: redis.status === 'fulfilled' ? 'ok' : 'down' };
    const ready = checks.postgres === 'ok' && checks.redis === 'ok';
    return reply.code(ready ? 200 : 503).send(ready ? { status: 'ready', checks } : { error: 'not_ready', message: 'A dependency is unreachable.', checks });
  });
}
