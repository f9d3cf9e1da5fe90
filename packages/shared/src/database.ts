import { PrismaPg } from '@prisma/adapter-pg';
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
  const adapter = new PrismaPg(
    {
      connectionString: url.toString(),
      max: options.poolSize ?? 10,
      application_name: options.applicationName,
      // Fail a request quickly rather than queue it forever when PostgreSQL is down.
      connectionTimeoutMillis: 5_000,
      options: schema ? `-c search_path=${schema}` : undefined,
    },
    schema ? { schema } : undefined,
  );
  return new PrismaClient({ adapter });
}

/** True for Prisma's unique-constraint violation (P2002): for us it means "already applied". */
export function isUniqueConstraintError(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

/** Prisma's codes for "cannot reach / lost / timed out talking to the database server". */
const UNAVAILABLE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** The pg driver adapter's error kinds for the same (`meta.driverAdapterError.cause.kind`). */
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TlsConnectionError']);

/**
 * True when `error` says PostgreSQL cannot be reached right now (down, restarting, connections
 * terminated, pool timeout), as opposed to a query that is wrong: the receiver answers 503 for these
 * and the worker reports them as an outage instead of a failure per job.
 */
export function isDatabaseUnavailableError(error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientKnownRequestError) {
    if (UNAVAILABLE_CODES.has(error.code)) return true;
    const cause = (error.meta?.driverAdapterError as { cause?: { kind?: string; code?: string } } | undefined)?.cause;
    if (cause?.kind && UNAVAILABLE_KINDS.has(cause.kind)) return true;
    // SQLSTATE class 08 (connection exception) and 57P0x (shutdown, crash, starting up).
    return cause?.kind === 'postgres' && /^(08|57P0)/.test(cause.code ?? '');
  }
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  // pg's own errors when the pool gives up or the server drops a connection mid-query.
  return error instanceof Error && /timeout exceeded when trying to connect|Connection terminated|ECONNREFUSED/.test(error.message);
}
