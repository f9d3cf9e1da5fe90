import { DEFAULT_REDIS_URL, parseCommandLine, usageError, type OptionSpec } from '@ledger/shared';
import { loadWorkerEnv } from '../../apps/order-worker/src/env.js';

/** The worker's own defaults: the bench measures what a deployment runs unless told otherwise. */
const WORKER_DEFAULTS = loadWorkerEnv({});

/** Which benchmarks a run includes (`--only` / `BENCH_ONLY`). */
export type BenchmarkName = 'ingest' | 'worker' | 'e2e' | 'scale-out' | 'curve' | 'long-poll' | 'postgres-ceiling' | 'spending';

/** How the receiver and the worker run: compiled JavaScript as in production, or TypeScript through tsx. */
export type BenchRuntime = 'compiled' | 'source';

/** Every knob of `npm run bench` (defaults keep a run under ~5 min). */
export interface BenchConfig {
  only: Set<BenchmarkName>;
  /** PostgreSQL database the bench connects to in order to create and drop its own database. */
  adminDatabaseUrl: string;
  redisUrl: string;
  runtime: BenchRuntime;
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
  /** Group commit: payments per statement and the wait to fill a batch (the worker's and the baseline's). */
  workerBatchSize: number;
  workerBatchWaitMs: number;
  /** PostgreSQL connections the ceiling benchmark measures at, and the credits it applies at each. */
  ceilingConnections: number[];
  ceilingCredits: number;
  e2eRate: number;
  /**
   * When the system cannot keep up with `e2eRate` on this machine, a second end-to-end run at this
   * rate shows the latency of an unsaturated system: `auto` (half the credits/s the first run
   * reached), a number, or 0 for none.
   */
  e2eFallbackRate: number | 'auto';
  e2eSeconds: number;
  e2eWarmupSeconds: number;
  /** The cold window: events due in the first this many seconds after the first request. */
  e2eColdSeconds: number;
  /** Latency curve: the rates always measured, each step's measured seconds, and where the search stops. */
  curveRates: number[];
  curveSeconds: number;
  curveMaxRate: number;
  /** Scale-out: seconds of traffic, and when (after the first send) the second receiver is started. */
  scaleOutSeconds: number;
  scaleOutJoinAfterSeconds: number;
  /** The soak (only with --soak): seconds at `e2eRate`. */
  soak: boolean;
  soakSeconds: number;
  /** How long the end-to-end benchmark waits for the last credit after the last send. */
  e2eDrainTimeoutSeconds: number;
  /** How often the end-to-end benchmark looks for new ledger entries; bounds its time resolution. */
  e2ePollMs: number;
  /** Concurrent long-poll clients, and the rate (updates/s) of the status changes they wait for. */
  longPollWaiters: number;
  longPollRate: number;
  /** Spending: the fixed debit rate, its measured seconds, the max-throughput seconds and clients, the account shapes. */
  spendingRate: number;
  spendingSeconds: number;
  spendingMaxSeconds: number;
  spendingClients: number;
  spendingHotAccounts: number;
  spendingManyAccounts: number;
  /** Child processes (`receiver`, `worker`) started with `--cpu-prof`; profiles go to bench/profiles. */
  cpuProfile: Set<'receiver' | 'worker'>;
  keepLogs: boolean;
}

/** A knob: its flag (the key), the variable that sets it too, its default and meaning. The flag wins. */
interface Knob extends OptionSpec {
  env: string;
}

function knob(env: string, value: string, description: string): Knob & { type: 'string' };
function knob(env: string, value: undefined, description: string): Knob & { type: 'boolean' };
function knob(env: string, value: string | undefined, description: string): Knob {
  return value === undefined
    ? { type: 'boolean', env, description: `${description} (${env}=1)` }
    : { type: 'string', value, env, description: `${description} (${env})` };
}

/** One table for the flags, the variables and `--help`. */
const KNOBS = {
  only: knob(
    'BENCH_ONLY',
    'LIST',
    'benchmarks to run, of ingest,worker,e2e,scale-out,curve,long-poll,postgres-ceiling,spending; default all',
  ),
  runtime: knob(
    'BENCH_RUNTIME',
    'compiled|source',
    'run the receiver and worker compiled (default; `npm run bench` builds first) or from source with tsx',
  ),
  rounds: knob('BENCH_ROUNDS', 'N', 'rounds of benchmarks 1 and 2, system and baseline each; default 2'),
  'ingest-seconds': knob('BENCH_INGEST_SECONDS', 'S', 'length of each ingest run; default 10'),
  'ingest-warmup-seconds': knob('BENCH_INGEST_WARMUP_SECONDS', 'S', 'ingest warm-up; default 2'),
  connections: knob('BENCH_CONNECTIONS', 'N', 'autocannon connections; default 32'),
  'worker-events': knob('BENCH_WORKER_EVENTS', 'N', 'jobs each worker variant drains; default 2000'),
  'worker-concurrency': knob(
    'BENCH_WORKER_CONCURRENCY',
    'N',
    `WORKER_CONCURRENCY of the real worker and the baseline; default the worker's (${WORKER_DEFAULTS.WORKER_CONCURRENCY})`,
  ),
  'worker-batch-size': knob(
    'BENCH_WORKER_BATCH_SIZE',
    'N',
    `WORKER_BATCH_SIZE of the real worker and the baseline; default the worker's (${WORKER_DEFAULTS.WORKER_BATCH_SIZE})`,
  ),
  'worker-batch-wait-ms': knob(
    'BENCH_WORKER_BATCH_WAIT_MS',
    'MS',
    `WORKER_BATCH_WAIT_MS likewise; default the worker's (${WORKER_DEFAULTS.WORKER_BATCH_WAIT_MS})`,
  ),
  'ceiling-connections': knob('BENCH_CEILING_CONNECTIONS', 'LIST', 'PostgreSQL connections of the ceiling benchmark; default 1,4,16'),
  'ceiling-credits': knob('BENCH_CEILING_CREDITS', 'N', 'credits applied at each ceiling level; default 20000'),
  'e2e-rate': knob('BENCH_E2E_RATE', 'N', 'end-to-end events/s; default 1000'),
  'e2e-seconds': knob('BENCH_E2E_SECONDS', 'S', 'end-to-end duration; default 10'),
  'e2e-warmup-seconds': knob('BENCH_E2E_WARMUP_SECONDS', 'S', 'end-to-end warm-up; default 2'),
  'e2e-cold-seconds': knob('BENCH_E2E_COLD_SECONDS', 'S', 'end-to-end cold window from the first request; default 10'),
  'curve-rates': knob('BENCH_CURVE_RATES', 'LIST', 'rates of the latency curve, events/s; default 100,300,1000'),
  'curve-seconds': knob('BENCH_CURVE_SECONDS', 'S', 'measured seconds of each curve step (after 1 s warm-up); default 5'),
  'curve-max-rate': knob('BENCH_CURVE_MAX_RATE', 'N', 'highest rate the curve search tries; default 3000'),
  'scale-out-seconds': knob('BENCH_SCALE_OUT_SECONDS', 'S', 'scale-out run length; default 8'),
  'scale-out-join-after-seconds': knob('BENCH_SCALE_OUT_JOIN_AFTER_SECONDS', 'S', 'when the second receiver is started; default 2'),
  soak: knob('BENCH_SOAK', undefined, 'also run the soak: e2e-rate for soak-seconds through fresh processes'),
  'soak-seconds': knob('BENCH_SOAK_SECONDS', 'S', 'soak length; default 60'),
  'e2e-fallback-rate': knob('BENCH_E2E_FALLBACK_RATE', 'auto|N', 'rate of run 3b when run 3 falls behind; 0 for none; default auto'),
  'e2e-drain-timeout-seconds': knob('BENCH_E2E_DRAIN_TIMEOUT_SECONDS', 'S', 'wait for the last credit after the last send; default 45'),
  'e2e-poll-ms': knob('BENCH_E2E_POLL_MS', 'MS', 'ledger polling interval (the latency resolution); default 5'),
  'long-poll-waiters': knob('BENCH_LONG_POLL_WAITERS', 'N', 'concurrent long-poll clients; default 1000'),
  'long-poll-rate': knob('BENCH_LONG_POLL_RATE', 'N', 'status changes per second they wait for; default 200'),
  'spending-rate': knob('BENCH_SPENDING_RATE', 'N', 'debits/s of the fixed-rate spending runs; default 500'),
  'spending-seconds': knob(
    'BENCH_SPENDING_SECONDS',
    'S',
    'measured seconds of each fixed-rate spending run (after 1 s warm-up); default 3',
  ),
  'spending-max-seconds': knob('BENCH_SPENDING_MAX_SECONDS', 'S', 'measured seconds of each max-throughput spending run; default 2'),
  'spending-clients': knob('BENCH_SPENDING_CLIENTS', 'N', 'concurrent clients of the max-throughput spending runs; default 32'),
  'spending-hot-accounts': knob('BENCH_SPENDING_HOT_ACCOUNTS', 'N', 'accounts of the hot shape; default 4'),
  'spending-many-accounts': knob('BENCH_SPENDING_MANY_ACCOUNTS', 'N', 'accounts of the many shape; default 1000'),
  'log-level': knob('BENCH_LOG_LEVEL', 'LEVEL', 'LOG_LEVEL of the receiver and the worker; default info'),
  'cpu-prof': knob('BENCH_CPU_PROF', 'LIST', 'receiver, worker or both: run them with --cpu-prof (profiles in bench/profiles/)'),
  'keep-logs': knob('BENCH_KEEP_LOGS', undefined, "keep the child processes' logs (kept anyway when a run fails)"),
  'admin-database-url': knob(
    'BENCH_ADMIN_DATABASE_URL',
    'URL',
    'where the bench database is created; default postgresql://postgres@127.0.0.1:5432/postgres',
  ),
} satisfies Record<string, Knob>;

type KnobName = keyof typeof KNOBS;

/**
 * Reads the knobs from `args` (flags) and the environment (`BENCH_*`); an invalid one stops the run
 * with one line naming it.
 */
export function loadBenchConfig(args = process.argv.slice(2)): BenchConfig {
  const { values } = parseCommandLine(
    'bench',
    {
      usage: 'npm run bench [-- options]',
      summary:
        'The benchmarks: receiver ingest vs bare Fastify, worker drain vs plain pg, end-to-end latency at a fixed rate, peak RSS. Each figure is printed next to a baseline measured in the same run; results go to bench/results.json. See bench/README.md.',
      options: KNOBS,
      environment: ['REDIS_URL', 'and the BENCH_* variable named after each option'],
      exitCodes: [
        [0, 'the run completed (targets may still be missed: see the table)'],
        [1, 'the run failed, or PostgreSQL or Redis is unreachable'],
        [64, 'bad option or value'],
      ],
    },
    args,
  );
  /** The flag's value, else the variable's; `undefined` when neither is set. */
  const raw = (name: KnobName): string | undefined => {
    const flag = values[name];
    if (flag !== undefined) return String(flag === true ? '1' : flag);
    const fromEnv = process.env[KNOBS[name].env];
    return fromEnv === '' ? undefined : fromEnv;
  };
  const bad = (name: KnobName, expected: string, given: string): never =>
    usageError('bench', `--${name} (${KNOBS[name].env}) must be ${expected} (got "${given}")`);
  const number = (name: KnobName, fallback: number, { min = 0, integer = true } = {}): number => {
    const given = raw(name);
    if (given === undefined) return fallback;
    const value = Number(given);
    if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value)))
      bad(name, `${integer ? 'an integer' : 'a number'} ≥ ${min}`, given);
    return value;
  };
  const list = <T extends string>(name: KnobName, allowed: readonly T[], fallback: readonly T[]): Set<T> => {
    const given = raw(name);
    if (given === undefined) return new Set(fallback);
    const items = given
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean);
    if (items.some((item) => !(allowed as readonly string[]).includes(item))) bad(name, `a list of ${allowed.join(', ')}`, given);
    return new Set(items as T[]);
  };
  const choice = <T extends string>(name: KnobName, allowed: readonly T[], fallback: T): T => {
    const given = raw(name) ?? fallback;
    return (allowed as readonly string[]).includes(given) ? (given as T) : bad(name, `one of ${allowed.join(', ')}`, given);
  };
  const fallbackRate = raw('e2e-fallback-rate');
  return {
    only: list('only', ['ingest', 'worker', 'e2e', 'scale-out', 'curve', 'long-poll', 'postgres-ceiling', 'spending'] as const, [
      'ingest',
      'worker',
      'e2e',
      'scale-out',
      'curve',
      'long-poll',
      'postgres-ceiling',
      'spending',
    ]),
    adminDatabaseUrl: raw('admin-database-url') ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL || DEFAULT_REDIS_URL,
    runtime: choice('runtime', ['compiled', 'source'] as const, 'compiled'),
    logLevel: raw('log-level') ?? 'info',
    rounds: number('rounds', 2, { min: 1 }),
    ingestSeconds: number('ingest-seconds', 10, { min: 1 }),
    ingestWarmupSeconds: number('ingest-warmup-seconds', 2),
    ingestConnections: number('connections', 32, { min: 1 }),
    workerEvents: number('worker-events', 2_000, { min: 1 }),
    workerConcurrency: number('worker-concurrency', WORKER_DEFAULTS.WORKER_CONCURRENCY, { min: 1 }),
    workerBatchSize: number('worker-batch-size', WORKER_DEFAULTS.WORKER_BATCH_SIZE, { min: 1 }),
    workerBatchWaitMs: number('worker-batch-wait-ms', WORKER_DEFAULTS.WORKER_BATCH_WAIT_MS, { min: 0, integer: false }),
    ceilingConnections: (raw('ceiling-connections') ?? '1,4,16').split(',').map((item) => {
      const value = Number(item.trim());
      return Number.isInteger(value) && value >= 1
        ? value
        : bad('ceiling-connections', 'a list of integers ≥ 1', raw('ceiling-connections') ?? '');
    }),
    ceilingCredits: number('ceiling-credits', 20_000, { min: 100 }),
    e2eRate: number('e2e-rate', 1_000, { min: 1 }),
    e2eFallbackRate: fallbackRate === undefined || fallbackRate === 'auto' ? 'auto' : number('e2e-fallback-rate', 0),
    e2eSeconds: number('e2e-seconds', 10, { min: 1 }),
    e2eWarmupSeconds: number('e2e-warmup-seconds', 2),
    e2eColdSeconds: number('e2e-cold-seconds', 10, { min: 1 }),
    curveRates: (raw('curve-rates') ?? '100,300,1000').split(',').map((item) => {
      const value = Number(item.trim());
      return Number.isInteger(value) && value >= 1 ? value : bad('curve-rates', 'a list of integers ≥ 1', raw('curve-rates') ?? '');
    }),
    curveSeconds: number('curve-seconds', 5, { min: 1 }),
    curveMaxRate: number('curve-max-rate', 3_000, { min: 1 }),
    scaleOutSeconds: number('scale-out-seconds', 8, { min: 2 }),
    scaleOutJoinAfterSeconds: number('scale-out-join-after-seconds', 2, { min: 0, integer: false }),
    soak: raw('soak') === '1',
    soakSeconds: number('soak-seconds', 60, { min: 10 }),
    e2eDrainTimeoutSeconds: number('e2e-drain-timeout-seconds', 45, { min: 1 }),
    e2ePollMs: number('e2e-poll-ms', 5, { min: 1 }),
    longPollWaiters: number('long-poll-waiters', 1_000, { min: 1 }),
    longPollRate: number('long-poll-rate', 200, { min: 1 }),
    spendingRate: number('spending-rate', 500, { min: 1 }),
    spendingSeconds: number('spending-seconds', 3, { min: 1 }),
    spendingMaxSeconds: number('spending-max-seconds', 2, { min: 1 }),
    spendingClients: number('spending-clients', 32, { min: 1 }),
    spendingHotAccounts: number('spending-hot-accounts', 4, { min: 1 }),
    spendingManyAccounts: number('spending-many-accounts', 1_000, { min: 1 }),
    cpuProfile: list('cpu-prof', ['receiver', 'worker'] as const, []),
    keepLogs: raw('keep-logs') === '1',
  };
}
