import { Cluster } from 'ioredis';
import pg from 'pg';
import { connectRedis } from './redis.js';
import { redisEndpoint } from './redis-url.js';
import { withTimeout } from './timeout.js';

/**
 * A start-up failure the operator can act on (a dependency unreachable, a port taken): the process
 * prints its message as one line and exits 1, no stack trace.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** How long a start-up probe waits for PostgreSQL or Redis before calling it unreachable. */
const PROBE_TIMEOUT_MS = 3_000;

/** `host:port` of a service URL, without user or password: safe to print. */
export function endpointOf(url: string, defaultPort: number): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || 'localhost'}:${parsed.port || defaultPort}`;
  } catch {
    return '(unparseable URL)';
  }
}

/** A driver error in words (errno or PostgreSQL SQLSTATE), never echoing credentials. */
function reason(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: string; message?: string };
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'no route or no answer';
    case '28P01':
    case '28000':
    case 'NOAUTH':
    case 'WRONGPASS':
      return `login refused (${message?.split('\n')[0] ?? code})`;
    case '3D000':
      return `${message ?? 'database does not exist'} (npm run migrate creates it)`;
    default:
      return message?.split('\n')[0] || String(error);
  }
}

/**
 * Connects to PostgreSQL and runs `SELECT 1`, or throws a {@link StartupError} saying where and why.
 * `databaseMayBeMissing`: a server that answers "no such database" passes (migrations create it).
 */
export async function probePostgres(url: string, { timeoutMs = PROBE_TIMEOUT_MS, databaseMayBeMissing = false } = {}): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  // A server that dies after the connect emits 'error' on the client; the probe reports it instead.
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    if (databaseMayBeMissing && (error as { code?: string }).code === '3D000') return;
    const timedOut = error instanceof Error && /timeout/i.test(error.message);
    throw new StartupError(
      `PostgreSQL unreachable at ${endpointOf(url, 5432)}: ${timedOut ? `no answer within ${timeoutMs / 1000} s` : reason(error)}`,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Connects to Redis and sends `PING`, or throws a {@link StartupError} saying where and why. On a
 * cluster the connect reads the slot map, so it passes only when some node answers for the cluster.
 */
export async function probeRedis(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  const client = connectRedis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    // One attempt: this is the start-up check, the long-lived connections retry on their own.
    retryStrategy: () => null,
  });
  let lastError: unknown;
  client.on('error', (error) => (lastError = error));
  try {
    // connectTimeout covers the TCP connect only; a server that accepts and never answers would
    // hold the ready check forever.
    await withTimeout(
      client.connect().then(() => client.ping()),
      timeoutMs,
      'timed out',
    );
  } catch (error) {
    const cause = lastError ?? error;
    const timedOut = cause instanceof Error && /timed? ?out/i.test(cause.message);
    // A cluster client only says it could not read the slot map ("Failed to refresh slots cache").
    const clusterDown =
      client instanceof Cluster && /slots cache|startup nodes|Connection is closed/i.test(String((cause as Error)?.message));
    const why = timedOut ? `no answer within ${timeoutMs / 1000} s` : clusterDown ? 'no cluster node answered' : reason(cause);
    throw new StartupError(`Redis unreachable at ${redisEndpoint(url)}: ${why}`);
  } finally {
    client.disconnect();
  }
}

/**
 * Checks at start that PostgreSQL and Redis answer, both at once, so that a process with a wrong URL
 * or a service down stops within seconds with one line instead of retrying silently forever.
 */
export async function requireReachable(targets: { postgres?: string; redis?: string }): Promise<void> {
  const results = await Promise.allSettled([
    targets.postgres === undefined ? undefined : probePostgres(targets.postgres),
    targets.redis === undefined ? undefined : probeRedis(targets.redis),
  ]);
  const problems = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
  if (problems.length === 0) return;
  const unexpected = problems.find((problem) => !(problem instanceof StartupError));
  if (unexpected) throw unexpected;
  throw new StartupError(problems.map((problem) => (problem as Error).message).join('; '));
}

/** A `listen` that failed because the port is taken or not allowed, as one line naming the variable. */
export function listenError(error: unknown, where: { host: string; port: number; variable: string }): unknown {
  const code = (error as { code?: string }).code;
  if (code === 'EADDRINUSE') {
    return new StartupError(`port ${where.port} on ${where.host} is already in use: set ${where.variable} to a free port`);
  }
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    return new StartupError(`cannot listen on ${where.host}:${where.port} (${code}): check ${where.variable}`);
  }
  return error;
}

/**
 * Fails now, as the listen later would, when `port` on `host` cannot be listened on (taken, not
 * allowed): a process that warms up before it listens must not spend its warm-up to find that out.
 * Port 0 (any free port) always can. The probe's listener is closed at once.
 */
export async function ensureCanListen(where: { host: string; port: number; variable: string }): Promise<void> {
  if (where.port === 0) return;
  const { createServer } = await import('node:net');
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error) => reject(listenError(error, where)));
    probe.listen({ host: where.host, port: where.port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
