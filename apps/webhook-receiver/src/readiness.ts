import { withTimeout } from '@ledger/shared';
import type { FastifyInstance } from 'fastify';

export interface DependencyChecks {
  postgres: 'ok' | 'down';
  redis: 'ok' | 'down';
}

/**
 * Whether PostgreSQL and Redis answer within `timeoutMs`: what `/readyz` answers (a second) and what
 * `/metrics` reports as `ledger_ready` and `ledger_dependency_up` (half a second, within a scrape).
 */
export async function checkDependencies(app: FastifyInstance, timeoutMs: number): Promise<DependencyChecks> {
  const [postgres, redis] = await Promise.allSettled([
    withTimeout(app.prisma.$queryRaw`SELECT 1`, timeoutMs),
    withTimeout(app.redis.ping(), timeoutMs),
  ]);
  return { postgres: postgres.status === 'fulfilled' ? 'ok' : 'down', redis: redis.status === 'fulfilled' ? 'ok' : 'down' };
}
