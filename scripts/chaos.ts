/**
 * `npm run chaos`: proves "exactly once" under fire. Starts the Stripe emulator, the receiver and
 * worker processes on real PostgreSQL and a Redis of its own; places and pays orders while
 * SIGKILLing workers, crashing Redis once (with `--redis-cluster`: failing over the master of the
 * queues' slot on a Redis Cluster of its own) and terminating every PostgreSQL connection once; then
 * checks every payment was credited once, every refund and dispute debited once, every balance
 * equals its ledger. Prints one summary line; exits 1 if anything was lost or doubled. Options:
 * `npm run chaos -- --help`.
 */
import { StartupError, parseCommandLine, probePostgres, usageError } from '@ledger/shared';
import { ADMIN_DATABASE_URL } from './chaos/database.js';
import { runChaos, type ChaosOptions } from './chaos/run.js';

const { values } = parseCommandLine('chaos', {
  usage: 'npm run chaos [-- options]',
  summary:
    'The chaos proof: places and pays orders through the receiver and the emulator while SIGKILLing workers, crashing its own Redis and terminating PostgreSQL connections, then checks that nothing was lost or doubled. Prints one summary line.',
  options: {
    short: {
      type: 'boolean',
      description: '1,000 orders over 100 accounts, 2 workers (also CHAOS_MODE=short); default 10,000 over 500, 3 workers',
    },
    orders: { type: 'string', value: 'N', description: 'orders placed' },
    accounts: { type: 'string', value: 'N', description: 'accounts they credit' },
    workers: { type: 'string', value: 'N', description: 'worker processes running at once' },
    kills: { type: 'string', value: 'N', description: 'SIGKILLs of a single worker at random moments' },
    seed: { type: 'string', value: 'N', description: 'seed of the plan and of the violence (printed by every run)' },
    'drop-rate': {
      type: 'string',
      value: 'R',
      description: 'share of webhooks never sent (default 0.01), for the final reconciliation pass',
    },
    'keep-db': { type: 'boolean', description: "keep the run's database" },
    'keep-logs': { type: 'boolean', description: "keep the processes' logs" },
    'sigterm-redis': { type: 'boolean', description: 'stop Redis cleanly instead of crashing it' },
    'redis-cluster': {
      type: 'boolean',
      description:
        "run on a Redis Cluster of its own (3 masters, 3 replicas) and SIGKILL the master of the queues' slot during the load (a failover) instead of crashing and flushing one redis-server",
    },
    quiet: { type: 'boolean', description: 'only the summary line' },
  },
  environment: ['CHAOS_ADMIN_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres)', 'CHAOS_MODE'],
  exitCodes: [
    [0, 'nothing lost, nothing doubled, every balance equals its ledger'],
    [1, 'something was lost or doubled, or PostgreSQL is unreachable'],
    [2, 'the run itself failed (a process could not start)'],
    [64, 'bad option'],
  ],
});

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) usageError('chaos', `--${name} must be a positive integer, got ${value}`);
  return parsed;
}

function dropRate(value: string | undefined): number {
  if (value === undefined) return 0.01;
  const parsed = Number(value);
  if (!(parsed >= 0 && parsed <= 1)) usageError('chaos', `--drop-rate must be between 0 and 1, got ${value}`);
  return parsed;
}

const startedAt = Date.now();
const short = values.short ?? process.env.CHAOS_MODE === 'short';
const orders = positiveInt('orders', values.orders, short ? 1_000 : 10_000);
const options: ChaosOptions = {
  orders,
  accounts: positiveInt('accounts', values.accounts, short ? 100 : 500),
  workers: positiveInt('workers', values.workers, short ? 2 : 3),
  workerKills: positiveInt('kills', values.kills, short ? 2 : Math.max(4, Math.round(orders / 1_000))),
  killAllWorkers: short ? 1 : 2,
  dropRate: dropRate(values['drop-rate']),
  seed: values.seed === undefined ? undefined : positiveInt('seed', values.seed, 0),
  keepDatabase: values['keep-db'] ?? false,
  keepLogs: values['keep-logs'] ?? false,
  redisStopSignal: values['sigterm-redis'] ? 'SIGTERM' : 'SIGKILL',
  redisCluster: values['redis-cluster'] ?? false,
  quiescenceTimeoutMs: short ? 180_000 : 900_000,
  log: values.quiet ? undefined : (line) => console.log(`[chaos +${Math.round((Date.now() - startedAt) / 1000)}s] ${line}`),
};

try {
  await probePostgres(ADMIN_DATABASE_URL);
} catch (error) {
  if (!(error instanceof StartupError)) throw error;
  console.error(`chaos cannot start: ${error.message}`);
  process.exit(1);
}

const abort = new AbortController();
process.once('SIGINT', () => {
  console.error('[chaos] interrupted: stopping every process it started');
  abort.abort(new Error('interrupted'));
});

try {
  const summary = await runChaos({ ...options, signal: abort.signal });
  console.log(summary.line);
  process.exit(summary.ok && summary.lost === 0 && summary.doubled === 0 ? 0 : 1);
} catch (error) {
  console.error(`chaos run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(2);
}
