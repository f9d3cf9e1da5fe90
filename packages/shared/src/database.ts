import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { Prisma, PrismaClient } from './generated/prisma/client.js';

export { Prisma, PrismaClient };
export type {
  Account,
  LedgerEntry,
  Order,
  StripeEvent,
  OrderStatus,
  LedgerEntryType,
} from './generated/prisma/client.js';

/** Options for {@link createPrismaClient}. */
export interface PrismaClientOptions {
  /** Pool size of this process's PostgreSQL connections. */
  poolSize?: number;
  /** Name shown in `pg_stat_activity`, so operators can tell receivers from workers. */
  applicationName?: string;
}

/**
 * Builds a Prisma client on the `pg` driver adapter (Prisma 7 has no bundled query engine).
 * A `?schema=` parameter in the URL is honoured the way Prisma's own engines honour it.
 */
export function createPrismaClient(databaseUrl: string, options: PrismaClientOptions = {}): PrismaClient {
  const url = new URL(databaseUrl);
  const schema = url.searchParams.get('schema') ?? undefined;
  url.searchParams.delete('schema');
  // The adapter's pool, made here so that the hottest statement can use it too (poolOf).
  const pool = new pg.Pool({
    connectionString: url.toString(),
    max: options.poolSize ?? 10,
    application_name: options.applicationName,
    // Fail a request quickly rather than queue it forever when PostgreSQL is down.
    connectionTimeoutMillis: 5_000,
    options: schema ? `-c search_path=${schema}` : undefined,
  });
  // PostgreSQL closing an idle connection (a restart, pg_terminate_backend, a failover) is an
  // 'error' on the pool; pg drops that connection and opens another when one is needed. Prisma's
  // adapter listens only once it has connected, and the group-commit statement (and the worker's
  // warm-up) can use the pool before that: without this listener the error is uncaught and ends
  // the process (found by killing the worker's connections during its warm-up).
  pool.on('error', () => {});
  const adapter = new PrismaPg(pool, { ...(schema ? { schema } : {}), disposeExternalPool: true });
  const prisma = new PrismaClient({ adapter });
  pools.set(prisma, pool);
  return prisma;
}

const pools = new WeakMap<PrismaClient, pg.Pool>();

/**
 * The `pg` pool under a client made by {@link createPrismaClient}: the same connections Prisma
 * uses (closed by its `$disconnect`). Only the group-commit statement goes through it directly,
 * as a named prepared statement (parsed and planned once per connection); Prisma stays the data
 * layer for everything else.
 */
export function poolOf(prisma: PrismaClient): pg.Pool | undefined {
  return pools.get(prisma);
}

/** The PostgreSQL error behind a Prisma error (raw queries through the pg adapter), if any. */
export function postgresErrorOf(error: unknown): { code: string; constraint?: string } | undefined {
  // pg's own error (a statement sent through poolOf's pool).
  if (error instanceof pg.DatabaseError && error.code)
    return error.constraint ? { code: error.code, constraint: error.constraint } : { code: error.code };
  if (!(error instanceof Prisma.PrismaClientKnownRequestError)) return undefined;
  const cause = (
    error.meta as
      | { driverAdapterError?: { cause?: { originalCode?: unknown; code?: unknown; constraint?: { index?: unknown } } } }
      | undefined
  )?.driverAdapterError?.cause;
  const code = typeof cause?.originalCode === 'string' ? cause.originalCode : typeof cause?.code === 'string' ? cause.code : undefined;
  if (!code) return undefined;
  const constraint = typeof cause?.constraint?.index === 'string' ? cause.constraint.index : undefined;
  return constraint ? { code, constraint } : { code };
}

/** PostgreSQL codes after which the whole transaction may simply run again. */
const RETRYABLE_POSTGRES_CODES = new Set(['40001', '40P01']);
/** Prisma's transaction errors: a write conflict or deadlock (P2034), a transaction that timed out or closed (P2028). */
const RETRYABLE_PRISMA_CODES = new Set(['P2034', 'P2028']);

function isRetryableTransactionError(error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientKnownRequestError && RETRYABLE_PRISMA_CODES.has(error.code)) return true;
  const postgres = postgresErrorOf(error);
  return postgres !== undefined && RETRYABLE_POSTGRES_CODES.has(postgres.code);
}

export interface TransactionOptions {
  /** Longest wait for a pooled connection (Prisma's default, 2 s, is short for a busy worker). */
  maxWaitMs?: number;
  /** Longest run of the transaction; credits can queue on one account's row lock. */
  timeoutMs?: number;
  isolationLevel?: Prisma.TransactionIsolationLevel;
  /** Runs after a deadlock, a serialization failure or a transaction timeout. */
  attempts?: number;
}

/**
 * An interactive transaction with explicit limits, run again (up to `attempts` times) when
 * PostgreSQL aborted it for a deadlock or a serialization failure, or Prisma for a timeout: each run
 * starts from scratch, so the unique keys still decide what is applied.
 */
export async function withTransaction<T>(
  prisma: PrismaClient,
  work: (tx: Prisma.TransactionClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await prisma.$transaction(work, {
        maxWait: options.maxWaitMs ?? 10_000,
        timeout: options.timeoutMs ?? 30_000,
        ...(options.isolationLevel ? { isolationLevel: options.isolationLevel } : {}),
      });
    } catch (error) {
      if (attempt >= attempts || !isRetryableTransactionError(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt + Math.random() * 20));
    }
  }
}

/** Prisma's codes for "cannot reach / lost / timed out talking to the database server". */
const UNAVAILABLE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** The pg driver adapter's error kinds for the same (`meta.driverAdapterError.cause.kind`). */
const UNAVAILABLE_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
  'TlsConnectionError',
]);

/**
 * True when `error` says PostgreSQL cannot be reached right now (down, restarting, connections
 * terminated, pool timeout), as opposed to a query that is wrong: the receiver answers 503 for these
 * and the worker reports them as an outage instead of a failure per job.
 */
export function isDatabaseUnavailableError(error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientKnownRequestError) {
    if (UNAVAILABLE_CODES.has(error.code)) return true;
    const kind = (error.meta?.driverAdapterError as { cause?: { kind?: string } } | undefined)?.cause?.kind;
    if (kind && UNAVAILABLE_KINDS.has(kind)) return true;
    // SQLSTATE class 08 (connection exception) and 57P0x (shutdown, crash, starting up).
    return /^(08|57P0)/.test(postgresErrorOf(error)?.code ?? '');
  }
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  // pg's own errors when the pool gives up or the server drops a connection mid-query.
  return error instanceof Error && /timeout exceeded when trying to connect|Connection terminated|ECONNREFUSED/.test(error.message);
}
