import { Redis } from 'ioredis';
import type pg from 'pg';
import { processCpuMs } from '@ledger/testkit';

/**
 * CPU time of the shared services, so each benchmark can say what one event costs Redis and
 * PostgreSQL on top of the app process: on two cores they compete for the same CPU.
 */
export interface ServiceCpu {
  /** Redis's own counter (all clients: other users of this Redis are included). */
  redisMs: number;
  /** Backends connected to the bench database, by pid: nobody else's queries. */
  postgresByPid: Map<number, number>;
}

/** Reads both counters now; without `database`, PostgreSQL is left out (the receiver does not use it for webhooks). */
export async function readServiceCpu(redisUrl: string, database?: { pool: pg.Pool; name: string }): Promise<ServiceCpu> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  let info: string;
  try {
    info = await redis.info('cpu');
  } finally {
    redis.disconnect();
  }
  const seconds = (field: string) => Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  const postgresByPid = new Map<number, number>();
  if (database) {
    // The bench's own connections (application_name "bench": seeding, polling) are not the system's work.
    const { rows } = await database.pool.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name <> 'bench'",
      [database.name],
    );
    for (const { pid } of rows) {
      // A backend may exit between the query and the read: it then simply does not count.
      try {
        postgresByPid.set(pid, processCpuMs(pid));
      } catch {}
    }
  }
  return { redisMs: (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000, postgresByPid };
}

/** CPU ms each service used between two readings; a backend that appeared meanwhile counts in full. */
export function serviceCpuUsed(before: ServiceCpu, after: ServiceCpu): { redisMs: number; postgresMs: number } {
  let postgresMs = 0;
  for (const [pid, ms] of after.postgresByPid) postgresMs += ms - (before.postgresByPid.get(pid) ?? 0);
  return { redisMs: after.redisMs - before.redisMs, postgresMs };
}
