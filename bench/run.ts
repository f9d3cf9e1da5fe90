/**
 * `npm run bench`: the benchmarks, each against a baseline measured in the same run (the machine
 * is small and shared, so only ratios within one run mean anything).
 *
 * 1. receiver ingest vs. a bare Fastify route (autocannon, full speed);
 * 2. worker drain (group commit) vs. the same worker unbatched and vs. the same SQL through plain pg;
 * 3. end-to-end latency at a fixed rate, webhook sent → credit visible; CPU per event of every
 *    process; Redis memory;
 * 4. peak RSS of the receiver and the worker under that load;
 * 5. long-poll: 1,000 waiting clients, time from a status change's commit to each answer, RSS;
 * 6. the PostgreSQL ceiling: the credit statement alone at 1, 4 and 16 connections; bytes per credit;
 * 7. spending: debits over HTTP at a fixed rate and at full speed, hot and many accounts, vs. plain pg.
 *
 * Prints a table with each target's PASS / MISS and writes bench/results.json. Runs on a fresh
 * database (`ledger_bench_<random>`, dropped at the end) and a fresh BullMQ prefix (keys deleted).
 * Knobs: `BENCH_*` variables, see bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StartupError, requireReachable } from '@ledger/shared';
import { createBenchDatabase, type BenchDatabase } from './lib/bench-database.js';
import { deleteKeysWithPrefix } from './lib/bench-redis.js';
import { loadBenchConfig } from './lib/config.js';
import { runEndToEndBenchmark } from './scenarios/end-to-end.js';
import { runIngestBenchmark } from './scenarios/ingest.js';
import { runLatencyCurve, runSoak } from './scenarios/latency-curve.js';
import { runScaleOutBenchmark } from './scenarios/scale-out.js';
import { runLongPollBenchmark } from './scenarios/long-poll.js';
import { runPostgresCeilingBenchmark } from './scenarios/postgres-ceiling.js';
import { runSpendingBenchmark } from './scenarios/spending.js';
import { sampleMachineLoad } from './lib/machine-load.js';
import { checkTargets, formatReport, type BenchResults, type MachineConditions } from './lib/report.js';
import type { RunContext } from './lib/system-processes.js';
import { runWorkerBenchmark } from './scenarios/worker-throughput.js';

const RESULTS_FILE = path.resolve('bench/results.json');

const config = loadBenchConfig();
try {
  await requireReachable({ postgres: config.adminDatabaseUrl, redis: config.redisUrl });
} catch (error) {
  if (!(error instanceof StartupError)) throw error;
  console.error(`bench cannot start: ${error.message}`);
  process.exit(1);
}
// The receiver and the worker run as in production, compiled: from the code as it is now.
if (config.runtime === 'compiled' && spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' }).status !== 0) {
  console.error('bench: npm run build failed');
  process.exit(1);
}
const runId = randomBytes(4).toString('hex');
const runPrefix = `bench-${runId}`;
const logDir = path.join(os.tmpdir(), `ledger-bench-${runId}`);
const log = (message: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

let db: BenchDatabase | undefined;
let context: RunContext | undefined;
let cleaning: Promise<void> | undefined;

/** Stops every child, drops the database and deletes the run's Redis keys; each step runs. */
function cleanUp(keepLogs: boolean): Promise<void> {
  cleaning ??= (async () => {
    const children = [...(context?.children ?? [])];
    await Promise.allSettled(children.map((child) => child.stop('SIGTERM', 5_000)));
    await db?.drop().catch((error: unknown) => log(`could not drop ${db?.name}: ${String(error)}`));
    await deleteKeysWithPrefix(config.redisUrl, `${runPrefix}-`).catch((error: unknown) =>
      log(`could not delete Redis keys: ${String(error)}`),
    );
    if (keepLogs) log(`child logs kept in ${logDir}`);
    else rmSync(logDir, { recursive: true, force: true });
  })();
  return cleaning;
}

// Ctrl+C reaches the children too (same process group); still drop what this run created.
process.once('SIGINT', () => void cleanUp(true).then(() => process.exit(130)));

const started = new Date();
const loadAverageBefore = os.loadavg();
let failed = false;
try {
  log(`run ${runId}: ${[...config.only].join(', ')}; load average ${loadAverageBefore.map((n) => n.toFixed(2)).join(' ')}`);
  const database = await createBenchDatabase(config.adminDatabaseUrl);
  db = database;
  log(`database ${database.name} migrated`);
  const runContext: RunContext = { config, databaseUrl: database.url, logDir, children: new Set() };
  context = runContext;

  const results: Omit<BenchResults, 'targets' | 'machine'> = { startedAt: started.toISOString() };
  const stageLoad: MachineConditions['stageLoad'] = {};
  /** Runs one stage and notes how busy the machine was meanwhile. */
  const stage = async <T>(name: keyof MachineConditions['stageLoad'], run: () => Promise<T>): Promise<T> => {
    const sampler = sampleMachineLoad();
    try {
      return await run();
    } finally {
      stageLoad[name] = sampler.stop();
    }
  };
  if (config.only.has('ingest')) {
    log(`1/3 ingest: ${config.rounds} × (bare Fastify, receiver) for ${config.ingestSeconds} s each`);
    results.ingest = await stage('ingest', () => runIngestBenchmark(runContext, runPrefix));
  }
  if (config.only.has('worker')) {
    log(
      `2/3 worker: ${config.rounds} × (real worker, same worker unbatched, plain pg with the same batched SQL) draining ${config.workerEvents} events`,
    );
    results.worker = await stage('worker', () => runWorkerBenchmark(runContext, database, runPrefix));
  }
  if (config.only.has('e2e')) {
    log(`3/3 end to end: ${config.e2eRate} events/s for ${config.e2eWarmupSeconds} s warm-up + ${config.e2eSeconds} s`);
    const endToEnd = await stage('endToEnd', () => runEndToEndBenchmark(runContext, database, runPrefix, config.e2eRate));
    results.endToEnd = endToEnd;
    const fellBehind = endToEnd.uncredited > 0 || endToEnd.creditsPerSecond < 0.95 * endToEnd.rate;
    const fallbackRate =
      config.e2eFallbackRate === 'auto' ? Math.max(10, Math.floor(endToEnd.creditsPerSecond / 2 / 10) * 10) : config.e2eFallbackRate;
    if (fellBehind && fallbackRate > 0 && Number.isFinite(fallbackRate)) {
      log(`   credits reached ${Math.round(endToEnd.creditsPerSecond)}/s only: again at ${fallbackRate} events/s`);
      results.endToEndFallback = await stage('endToEndFallback', () => runEndToEndBenchmark(runContext, database, runPrefix, fallbackRate));
    }
  }

  if (config.only.has('scale-out')) {
    log(`scale-out: a second receiver joins at ${config.scaleOutJoinAfterSeconds} s of ${config.e2eRate} events/s`);
    results.scaleOut = await stage('scaleOut', () => runScaleOutBenchmark(runContext, database, runPrefix));
  }
  if (config.only.has('curve')) {
    log(`latency curve: ${config.curveRates.join(', ')} events/s, then the highest rate with p99 < 100 ms (${config.curveSeconds} s each)`);
    results.curve = await stage('curve', () => runLatencyCurve(runContext, database, runPrefix));
  }
  if (config.soak) {
    log(`soak: ${config.e2eRate} events/s for ${config.soakSeconds} s`);
    results.soak = await stage('soak', () => runSoak(runContext, database, runPrefix));
  }

  if (config.only.has('long-poll')) {
    log(`long-poll: ${config.longPollWaiters} waiting clients, changes at ${config.longPollRate}/s, then all in one commit`);
    results.longPoll = await stage('longPoll', () => runLongPollBenchmark(runContext, database, runPrefix));
  }

  if (config.only.has('postgres-ceiling')) {
    log(
      `PostgreSQL ceiling: ${config.ceilingCredits} credits at ${config.ceilingConnections.join(', ')} connections, batches of ${config.workerBatchSize}`,
    );
    results.postgresCeiling = await stage('postgresCeiling', () => runPostgresCeilingBenchmark(runContext, database));
  }

  if (config.only.has('spending')) {
    log(
      `spending: debits at ${config.spendingRate}/s and at full speed (${config.spendingClients} clients) on ${config.spendingHotAccounts} and ${config.spendingManyAccounts} accounts, receiver vs. plain pg`,
    );
    results.spending = await stage('spending', () => runSpendingBenchmark(runContext, database, runPrefix));
  }

  const machine: MachineConditions = {
    cpus: os.cpus().length,
    node: process.version,
    runtime: config.runtime,
    loadAverageBefore,
    loadAverageAfter: os.loadavg(),
    stageLoad,
  };
  const complete = { ...results, machine };
  const report: BenchResults = { ...complete, targets: checkTargets(complete) };
  writeFileSync(RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\n${formatReport(report)}\n\nwritten: ${path.relative(process.cwd(), RESULTS_FILE)}\n`);
} catch (error) {
  failed = true;
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
} finally {
  await cleanUp(failed || config.keepLogs);
}
