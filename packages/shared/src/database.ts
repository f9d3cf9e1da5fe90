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
