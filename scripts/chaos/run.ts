/**
 * The chaos run, phase by phase: the system up (system.ts, its workers in workers.ts), the load under
 * fire (faults.ts), recovery (recovery.ts), the verdict (judge.ts, on verify.ts) and its summary line
 * (summary.ts). Each phase passes its results to the next as values.
 */
import { randomInt } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@ledger/testkit';
import type { ChaosOptions, RunContext } from './context.js';
import { playLoadUnderChaos } from './faults.js';
import { judge } from './judge.js';
import { recover } from './recovery.js';
import type { ChaosSummary } from './summary.js';
import { prepareDatabase, startRedis, startSystem } from './system.js';

// What runChaos takes and gives, for its callers (scripts/chaos.ts, test/helpers/chaos.ts).
export type { ChaosOptions } from './context.js';
export type { ChaosSummary } from './summary.js';

/**
 * The chaos run: the emulator, the receiver and worker processes on real PostgreSQL and a Redis of
 * the run's own; orders created through `POST /orders` and paid, refunded and disputed through the
 * emulator, which delivers duplicates, reordered and concurrently (some refunds fail afterwards, and
 * another integration's payments on the same account send events that are not ours); workers
 * SIGKILLed and restarted at random moments, every PostgreSQL connection terminated once, and Redis
 * crashed and restarted once and flushed once (every job it held is gone, acknowledged or not) or,
 * on a Redis Cluster, the master of the queues' slot SIGKILLed once (its replica takes over, without
 * what it had not replicated yet). After the system goes quiet, one reconciliation pass
 * (`npm run reconcile`) recovers what Redis lost, and the ledger is compared with what Stripe did.
 * Every process it starts is stopped.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  const seed = options.seed ?? randomInt(2 ** 31);
  const workDir = await mkdtemp(join(tmpdir(), 'ledger-chaos-'));
  const ctx: RunContext = {
    options,
    log: options.log ?? (() => undefined),
    rng: new Rng(seed),
    seed,
    started: Date.now(),
    signal: options.signal,
    workDir,
    logDir: join(workDir, 'logs'),
    cleanups: [],
    keepArtifacts: false,
  };
  await mkdir(ctx.logDir);
  try {
    const database = await prepareDatabase(ctx);
    const redis = await startRedis(ctx);
    const system = await startSystem(ctx, database, redis);
    const load = await playLoadUnderChaos(ctx, system, redis, database);
    const { reconcile, failed } = await recover(ctx, system, redis, database, load.records);
    const summary = await judge(ctx, { database, redis, system, load, reconcile, failed });
    ctx.keepArtifacts = !summary.ok;
    return summary;
  } catch (error) {
    ctx.keepArtifacts = true;
    throw error;
  } finally {
    // Workers, then intake, then Redis and the database (reverse start order); every step runs.
    for (const cleanup of ctx.cleanups.reverse()) {
      await cleanup().catch((error: unknown) => ctx.log(`cleanup step failed: ${String(error)}`));
    }
    if (ctx.keepArtifacts || options.keepLogs) ctx.log(`logs kept in ${ctx.logDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }
}
