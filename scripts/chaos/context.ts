/** What a chaos run is asked for, and what its phases share. */
import type { Rng } from '@ledger/testkit';

/** How big and how rough a run is. */
export interface ChaosOptions {
  /** Orders placed (each paid, failed, refunded or disputed per its scenario). */
  orders: number;
  /** Accounts they credit. */
  accounts: number;
  /** Worker processes running at once (at least two). */
  workers?: number;
  /** WORKER_CONCURRENCY of each worker process. */
  workerConcurrency?: number;
  /** Customers placing and paying orders at once. */
  clientConcurrency?: number;
  /** Spending operations (debits, holds) the merchant's backend has in flight at once during the load (0: none; default 6). */
  spendingConcurrency?: number;
  /** SIGKILLs of one random worker, at random moments of the load (besides the kill-all ones). */
  workerKills?: number;
  /** Moments at which every worker is SIGKILLed at once. */
  killAllWorkers?: number;
  /** Share of events the emulator delivers more than once. */
  duplicateRate?: number;
  /** Share of events the emulator never delivers: only the final reconciliation pass can find them. */
  dropRate?: number;
  /** How the run's Redis is stopped before its restart: SIGKILL is a crash (unsynced AOF writes lost). */
  redisStopSignal?: 'SIGKILL' | 'SIGTERM';
  /**
   * Run on a Redis Cluster of the run's own (3 masters, 3 replicas) instead of one redis-server: the
   * master serving the queues' slot is SIGKILLed once during the load (its replica takes over)
   * instead of the single server's crash-restart and flush.
   */
  redisCluster?: boolean;
  /** Seeds the plan, the chaos moments and the emulator's delivery chaos. */
  seed?: number;
  /** A migrated, empty database to use (tests pass theirs); default: a new `ledger_chaos_<random>`. */
  databaseUrl?: string;
  /** Keep the database the run created (default: drop it unless the run failed). */
  keepDatabase?: boolean;
  /** Keep the processes' logs (default: only when the run failed). */
  keepLogs?: boolean;
  /**
   * CPU niceness of the system's processes (0: none). Tests use it so that a test file running in
   * parallel keeps its share of the two cores.
   */
  niceness?: number;
  /** Longest wait for the system to go quiet after the load. */
  quiescenceTimeoutMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** What every phase of a run shares: its options, its randomness, its files and its clean-up steps. */
export interface RunContext {
  options: ChaosOptions;
  log: (line: string) => void;
  rng: Rng;
  seed: number;
  started: number;
  signal: AbortSignal | undefined;
  workDir: string;
  logDir: string;
  /** Run in reverse order at the end, each one even when another fails. */
  cleanups: (() => Promise<unknown>)[];
  /** Keep the database and the logs (the run failed). */
  keepArtifacts: boolean;
}
