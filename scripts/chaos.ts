/**
 * `npm run chaos`: proves "exactly once" under fire. Starts the Stripe emulator, the receiver and
 * worker processes on real PostgreSQL and a Redis of its own; places and pays orders while
 * SIGKILLing workers, crashing Redis once and terminating every PostgreSQL connection once; then
 * checks every payment was credited once, every refund and dispute debited once, every balance
 * equals its ledger. Prints one summary line; exits 1 if anything was lost or doubled.
 *
 *   npm run chaos                     long mode: 10,000 orders over 500 accounts
 *   npm run chaos -- --short          short mode: 1,000 orders over 100 accounts (CHAOS_MODE=short too)
 *   options: --orders N --accounts N --workers N --kills N (single-worker SIGKILLs) --seed N
 *            --drop-rate R (default 0.01: webhooks never sent, for the final reconciliation pass)
 *            --keep-db --keep-logs --sigterm-redis (a clean Redis stop instead of a crash) --quiet
 */
import { parseArgs } from 'node:util';
import { runChaos, type ChaosOptions } from './chaos/run.js';

const { values } = parseArgs({
  options: {
    short: { type: 'boolean', default: process.env.CHAOS_MODE === 'short' },
    orders: { type: 'string' },
    accounts: { type: 'string' },
    workers: { type: 'string' },
    seed: { type: 'string' },
    'drop-rate': { type: 'string' },
    kills: { type: 'string' },
    'keep-db': { type: 'boolean', default: false },
    'keep-logs': { type: 'boolean', default: false },
    'sigterm-redis': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) {
    console.error(`--${name} must be a positive integer, got ${value}`);
    process.exit(64);
  }
  return parsed;
}

function dropRate(value: string | undefined): number {
  if (value === undefined) return 0.01;
  const parsed = Number(value);
  if (!(parsed >= 0 && parsed <= 1)) {
    console.error(`--drop-rate must be between 0 and 1, got ${value}`);
    process.exit(64);
  }
  return parsed;
}

const startedAt = Date.now();
const short = values.short;
const orders = positiveInt('orders', values.orders, short ? 1_000 : 10_000);
const options: ChaosOptions = {
  orders,
  accounts: positiveInt('accounts', values.accounts, short ? 100 : 500),
  workers: positiveInt('workers', values.workers, short ? 2 : 3),
  workerKills: positiveInt('kills', values.kills, short ? 2 : Math.max(4, Math.round(orders / 1_000))),
  killAllWorkers: short ? 1 : 2,
  dropRate: dropRate(values['drop-rate']),
  seed: values.seed === undefined ? undefined : positiveInt('seed', values.seed, 0),
  keepDatabase: values['keep-db'],
  keepLogs: values['keep-logs'],
  redisStopSignal: values['sigterm-redis'] ? 'SIGTERM' : 'SIGKILL',
  quiescenceTimeoutMs: short ? 180_000 : 900_000,
  log: values.quiet ? undefined : (line) => console.log(`[chaos +${Math.round((Date.now() - startedAt) / 1000)}s] ${line}`),
};

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
  console.error(`chaos run failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  process.exit(2);
}
