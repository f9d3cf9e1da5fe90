import { withTimeout } from '@ledger/shared';

export interface ReadinessChecks {
  postgres: () => Promise<unknown>;
  redis: () => Promise<unknown>;
  /** Whether every BullMQ worker of the process is running (not closing, not closed). */
  workersRunning: () => boolean;
}

export interface Readiness {
  ready: boolean;
  checks: { postgres: 'ok' | 'down'; redis: 'ok' | 'down'; workers: 'ok' | 'stopped' };
}

const CHECK_TIMEOUT_MS = 1_000;

/**
 * Readiness: PostgreSQL and Redis answer within `timeoutMs` (a second for `/readyz`) and the workers
 * run. `/metrics` reports the same as `ledger_ready` and `ledger_dependency_up`.
 */
export async function readiness(checks: ReadinessChecks, timeoutMs = CHECK_TIMEOUT_MS): Promise<Readiness> {
  const [postgres, redis] = await Promise.allSettled([withTimeout(checks.postgres(), timeoutMs), withTimeout(checks.redis(), timeoutMs)]);
  const status = {
    postgres: postgres.status === 'fulfilled' ? 'ok' : 'down',
    redis: redis.status === 'fulfilled' ? 'ok' : 'down',
    workers: checks.workersRunning() ? 'ok' : 'stopped',
  } as const;
  return { ready: Object.values(status).every((value) => value === 'ok'), checks: status };
}
