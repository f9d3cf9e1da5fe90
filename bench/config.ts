import { DEFAULT_REDIS_URL } from '@ledger/shared';

/** Which benchmarks a run includes (`BENCH_ONLY`). */
export type BenchmarkName = 'ingest' | 'worker' | 'e2e' | 'long-poll';

/** Every knob of `npm run bench`, read once from `BENCH_*` variables (defaults keep a run under ~5 min). */
export interface BenchConfig {
  only: Set<BenchmarkName>;
  /** PostgreSQL database the bench connects to in order to create and drop its own database. */
  adminDatabaseUrl: string;
  redisUrl: string;
  /** Level of the receiver's and the worker's logs (written to files, as in production). */
  logLevel: string;
  /** Measured rounds of the ingest and worker benchmarks; each round runs the system and its baseline. */
  rounds: number;
  ingestSeconds: number;
  ingestWarmupSeconds: number;
  /** Concurrent keep-alive connections autocannon keeps open. */
  ingestConnections: number;
  workerEvents: number;
  workerConcurrency: number;
  e2eRate: number;
  /**
   * When the system cannot keep up with `e2eRate` on this machine, a second end-to-end run at this
   * rate shows the latency of an unsaturated system: `auto` (half the credits/s the first run
   * reached), a number, or 0 for none.
   */
  e2eFallbackRate: number | 'auto';
  e2eSeconds: number;
  e2eWarmupSeconds: number;
  /** How long the end-to-end benchmark waits for the last credit after the last send. */
  e2eDrainTimeoutSeconds: number;
  /** How often the end-to-end benchmark looks for new ledger entries; bounds its time resolution. */
  e2ePollMs: number;
  /** Concurrent long-poll clients, and the rate (updates/s) of the status changes they wait for. */
  longPollWaiters: number;
  longPollRate: number;
  /** Child processes (`receiver`, `worker`) started with `--cpu-prof`; profiles go to bench/profiles. */
  cpuProfile: Set<'receiver' | 'worker'>;
  keepLogs: boolean;
}

function numberVar(name: string, fallback: number, { min = 0, integer = true } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new Error(`${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${min} (got "${raw}")`);
  }
  return value;
}

function listVar<T extends string>(name: string, allowed: readonly T[], fallback: readonly T[]): Set<T> {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return new Set(fallback);
  const items = raw.split(',').map((item) => item.trim()).filter(Boolean);
  const unknown = items.filter((item) => !(allowed as readonly string[]).includes(item));
  if (unknown.length > 0) throw new Error(`${name} may hold ${allowed.join(', ')} (got "${unknown.join(', ')}")`);
  return new Set(items as T[]);
}

/** Reads the `BENCH_*` knobs; an invalid one stops the run with a line naming it. */
export function loadBenchConfig(): BenchConfig {
  return {
    only: listVar('BENCH_ONLY', ['ingest', 'worker', 'e2e', 'long-poll'] as const, ['ingest', 'worker', 'e2e', 'long-poll']),
    adminDatabaseUrl: process.env.BENCH_ADMIN_DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL || DEFAULT_REDIS_URL,
    logLevel: process.env.BENCH_LOG_LEVEL || 'info',
    rounds: numberVar('BENCH_ROUNDS', 2, { min: 1 }),
    ingestSeconds: numberVar('BENCH_INGEST_SECONDS', 10, { min: 1 }),
    ingestWarmupSeconds: numberVar('BENCH_INGEST_WARMUP_SECONDS', 2),
    ingestConnections: numberVar('BENCH_CONNECTIONS', 32, { min: 1 }),
    workerEvents: numberVar('BENCH_WORKER_EVENTS', 2_000, { min: 1 }),
    workerConcurrency: numberVar('BENCH_WORKER_CONCURRENCY', 16, { min: 1 }),
    e2eRate: numberVar('BENCH_E2E_RATE', 1_000, { min: 1 }),
    e2eFallbackRate: process.env.BENCH_E2E_FALLBACK_RATE === 'auto' || !process.env.BENCH_E2E_FALLBACK_RATE ? 'auto' : numberVar('BENCH_E2E_FALLBACK_RATE', 0),
    e2eSeconds: numberVar('BENCH_E2E_SECONDS', 10, { min: 1 }),
    e2eWarmupSeconds: numberVar('BENCH_E2E_WARMUP_SECONDS', 2),
    e2eDrainTimeoutSeconds: numberVar('BENCH_E2E_DRAIN_TIMEOUT_SECONDS', 45, { min: 1 }),
    e2ePollMs: numberVar('BENCH_E2E_POLL_MS', 5, { min: 1 }),
    longPollWaiters: numberVar('BENCH_LONG_POLL_WAITERS', 1_000, { min: 1 }),
    longPollRate: numberVar('BENCH_LONG_POLL_RATE', 200, { min: 1 }),
    cpuProfile: listVar('BENCH_CPU_PROF', ['receiver', 'worker'] as const, []),
    keepLogs: process.env.BENCH_KEEP_LOGS === '1',
  };
}
