// PostgreSQL access for the schema engine bridge: the driver adapter factory handed to the Wasm
// engine (built on @prisma/adapter-pg), plus the few database-level operations that the native
// engine performs itself (can-connect / create / drop database).

import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

// Load `pg` and the adapter utilities through @prisma/adapter-pg so they are the very copies the
// adapter uses (PrismaPg only accepts a pool that is `instanceof` its own pg.Pool).
const adapterRequire = createRequire(createRequire(import.meta.url).resolve('@prisma/adapter-pg'));
const { PrismaPg } = adapterRequire('@prisma/adapter-pg');
const pg = adapterRequire('pg');
const { bindMigrationAwareSqlAdapterFactory, ColumnTypeEnum, DriverAdapterError } = adapterRequire('@prisma/driver-adapter-utils');

/** Connection-string parameters that only Prisma understands; pg must not see them. */
const PRISMA_ONLY_PARAMS = [
  'schema',
  'connection_limit',
  'pool_timeout',
  'socket_timeout',
  'pgbouncer',
  'statement_cache_size',
  'sslaccept',
  'sslidentity',
  'sslpassword',
  'max_connection_lifetime',
  'max_idle_connection_lifetime',
];

const OID_CHAR = 18; // PostgreSQL's one-byte "char" type
const OID_TEXT = 25;

/** What a Prisma connection string points at. */
export function describeUrl(url) {
  const parsed = new URL(url);
  return {
    database: decodeURIComponent(parsed.pathname.slice(1)) || 'postgres',
    schema: parsed.searchParams.get('schema') ?? 'public',
    host: parsed.searchParams.get('host') ?? parsed.hostname,
    port: parsed.port || '5432',
    user: decodeURIComponent(parsed.username),
  };
}

/**
 * The pg connection string for a Prisma URL, optionally for another database on the same server.
 * `?schema=` becomes the connection's search_path, as the native engine sets it.
 */
function pgConnectionString(url, database) {
  const parsed = new URL(url);
  const { schema } = describeUrl(url);
  for (const param of PRISMA_ONLY_PARAMS) parsed.searchParams.delete(param);
  // libpq `options` syntax: backslash escapes spaces inside the value.
  const searchPath = `-c search_path=${quoteIdent(schema).replace(/[\\ ]/g, '\\$&')}`;
  const options = [parsed.searchParams.get('options'), searchPath].filter(Boolean).join(' ');
  parsed.searchParams.set('options', options);
  if (database !== undefined) parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

function quoteIdent(name) {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * adapter-pg maps result columns by type OID and rejects "char" (OID 18), which the engine's
 * catalog queries return (pg_class.relkind, pg_constraint.contype, ...). Its text value is a plain
 * string, so label such columns as text before the adapter looks at them, and remember which
 * columns of which statement they were: the engine reads some of them as a character (a CHECK
 * constraint's contype), so the adapter's answer names them Character again (connectAdapter).
 */
const CHAR_COLUMNS = new Map();

function relabelCharColumns(sql, result) {
  for (const entry of Array.isArray(result) ? result : [result]) {
    const chars = new Set();
    for (const [index, field] of (entry?.fields ?? []).entries()) {
      if (field.dataTypeID === OID_CHAR) {
        field.dataTypeID = OID_TEXT;
        chars.add(index);
      }
    }
    if (chars.size > 0 && typeof sql === 'string') CHAR_COLUMNS.set(sql, chars);
  }
  return result;
}

class CharAsTextClient extends pg.Client {
  query(config, values, callback) {
    if (typeof values === 'function') [values, callback] = [undefined, values];
    const sql = typeof config === 'string' ? config : config?.text;
    if (typeof callback === 'function') {
      return super.query(config, values, (error, result) => callback(error, result && relabelCharColumns(sql, result)));
    }
    const pending = super.query(config, values);
    return typeof pending?.then === 'function' ? pending.then((result) => relabelCharColumns(sql, result)) : pending;
  }
}

/**
 * A one-connection pool that never idles out. The engine takes a session-level advisory lock
 * (pg_advisory_lock) around migrations and relies on session state such as search_path, so every
 * statement must run on the same, long-lived connection, exactly as with the native engine.
 */
function createPool(connectionString) {
  return new pg.Pool({ connectionString, max: 1, idleTimeoutMillis: 0, Client: CharAsTextClient });
}

/**
 * A PrismaPg driver adapter on its own pool. Disposing the adapter ends the pool, then runs
 * `onDispose` (if any).
 */
async function connectAdapter(url, database, onDispose) {
  const pool = createPool(pgConnectionString(url, database));
  const factory = new PrismaPg(pool, { schema: describeUrl(url).schema, disposeExternalPool: true });
  const adapter = await factory.connect();
  // adapter-pg splits scripts on every `;` (breaking function bodies and string literals, and
  // half-applying a failing migration). A parameterless query goes out as one simple-protocol
  // message instead: PostgreSQL runs the whole script atomically, as the native engine does.
  adapter.executeScript = async (script) => {
    await adapter.executeRaw({ sql: script, args: [], argTypes: [] });
  };
  const queryRaw = adapter.queryRaw.bind(adapter);
  adapter.queryRaw = async (query) => {
    const result = await queryRaw(query);
    const chars = CHAR_COLUMNS.get(query.sql);
    if (chars) result.columnTypes = result.columnTypes.map((type, index) => (chars.has(index) ? ColumnTypeEnum.Character : type));
    return result;
  };
  const dispose = adapter.dispose.bind(adapter);
  adapter.dispose = async () => {
    await dispose();
    await onDispose?.();
  };
  return adapter;
}

/** Runs `fn` with a plain client on `database` (default: the URL's), then closes it. */
async function withClient(url, fn, database) {
  const client = new pg.Client({ connectionString: pgConnectionString(url, database) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The driver adapter factory for the Wasm engine, and close() to dispose of every adapter the
 * engine has not disposed of itself (ending its connection, dropping its temporary database).
 *
 * Shadow databases: adapter-pg's own connectToShadowDb() reconnects to the main database when the
 * adapter was built from a connection string, so it is done here instead. With a configured
 * shadowDatabaseUrl that database is emptied and used; otherwise a temporary database is created
 * on the main server and dropped when its adapter is disposed of.
 */
export function createAdapterFactory({ url, shadowDatabaseUrl }) {
  const open = new Set();
  const track = async (connecting) => {
    const adapter = await connecting;
    const dispose = adapter.dispose;
    adapter.dispose = async () => {
      open.delete(adapter);
      await dispose();
    };
    open.add(adapter);
    return adapter;
  };

  async function connectToShadowDb() {
    if (shadowDatabaseUrl) {
      const [main, shadow] = [describeUrl(url), describeUrl(shadowDatabaseUrl)];
      if (['host', 'port', 'database'].every((key) => main[key] === shadow[key])) {
        // Emptying it would wipe the main database; the native engine refuses this too.
        throw new Error(
          'The shadow database you configured appears to be the same as the main database. Please specify another shadow database.',
        );
      }
      await emptySchema(shadowDatabaseUrl);
      return track(connectAdapter(shadowDatabaseUrl));
    }
    const database = `prisma_migrate_shadow_db_${randomUUID()}`;
    const drop = () => withClient(url, (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`));
    await withClient(url, (client) => client.query(`CREATE DATABASE ${quoteIdent(database)}`));
    try {
      const { schema } = describeUrl(url);
      if (schema !== 'public') {
        await withClient(url, (client) => client.query(`CREATE SCHEMA ${quoteIdent(schema)}`), database);
      }
      return await track(connectAdapter(url, database, drop));
    } catch (error) {
      await drop();
      throw error;
    }
  }

  const factory = {
    provider: 'postgres',
    adapterName: '@prisma/adapter-pg',
    connect: () => track(connectAdapter(url)),
    connectToShadowDb: () =>
      connectToShadowDb().catch((error) => {
        throw toAdapterError(error);
      }),
  };

  return {
    factory: bindMigrationAwareSqlAdapterFactory(factory),
    close: () => Promise.all([...open].map((adapter) => adapter.dispose())),
  };
}

/**
 * The engine shows only an id for errors that are not DriverAdapterErrors, so errors from our own
 * connections are passed on as PostgreSQL errors, message included.
 */
function toAdapterError(error) {
  return new DriverAdapterError({
    kind: 'postgres',
    code: error.code ?? 'N/A',
    severity: error.severity ?? 'ERROR',
    message: error.message,
    detail: error.detail,
    column: error.column,
    hint: error.hint,
  });
}

/** Like the native engine's shadow database reset: drop and recreate the connection's schema. */
async function emptySchema(url) {
  const schema = quoteIdent(describeUrl(url).schema);
  await withClient(url, (client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};`));
}

/**
 * A stand-in adapter factory for requests that need no database (diffs between Prisma schemas and
 * "empty"): the native engine does not connect for those, but the Wasm engine probes its adapter
 * once when it starts. This adapter answers that probe and refuses everything else.
 */
export function createOfflineAdapterFactory({ schema = 'public' } = {}) {
  const refuse = async () => {
    throw toAdapterError(new Error('This request needs a database connection, but none was expected.'));
  };
  const adapter = {
    provider: 'postgres',
    adapterName: '@prisma/adapter-pg',
    getConnectionInfo: () => ({ schemaName: schema, supportsRelationJoins: true }),
    async queryRaw({ sql }) {
      // The probe: SELECT EXISTS(<schema>), version(), <numeric server version>.
      if (!sql.includes('version()')) return refuse();
      return {
        columnNames: ['exists', 'version', 'numeric_version'],
        columnTypes: [ColumnTypeEnum.Boolean, ColumnTypeEnum.Text, ColumnTypeEnum.Int32],
        rows: [[true, 'PostgreSQL', 0]],
      };
    },
    executeRaw: refuse,
    executeScript: refuse,
    startTransaction: refuse,
    dispose: async () => {},
  };
  return bindMigrationAwareSqlAdapterFactory({
    provider: 'postgres',
    adapterName: '@prisma/adapter-pg',
    connect: async () => adapter,
    connectToShadowDb: refuse,
  });
}

/**
 * The native engine's user-facing error for a failed connection or database command, as
 * { code, message } (code is undefined for errors without a Prisma error code).
 */
export function userFacingError(error, url) {
  const { database, host, port, user } = describeUrl(url);
  const at = `${host}:${port}`;
  switch (error.code) {
    case '3D000':
      return { code: 'P1003', message: `Database \`${database}\` does not exist on the database server at \`${at}\`.` };
    case '42P04':
      return { code: 'P1009', message: `Database \`${database}\` already exists on the database server at \`${at}\`` };
    case '28P01':
    case '28000':
      return {
        code: 'P1000',
        message: `Authentication failed against database server at \`${at}\`, the provided database credentials for \`${user}\` are not valid.\n\nPlease make sure to provide valid database credentials for the database server at \`${at}\`.`,
      };
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'ENOENT': // missing Unix socket
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return {
        code: 'P1001',
        message: `Can't reach database server at \`${at}\`\n\nPlease make sure your database server is running at \`${at}\`.`,
      };
    case 'ETIMEDOUT':
      return {
        code: 'P1002',
        message: `The database server at \`${at}\` was reached but timed out.\n\nPlease try again.\n\nPlease make sure your database server is running at \`${at}\`.`,
      };
    default:
      return { code: undefined, message: error.message };
  }
}

/** `cli can-connect-to-database` / ensureConnectionValidity for a URL. */
export async function canConnect(url) {
  await withClient(url, (client) => client.query('SELECT 1'));
}

/** dbExecute: the script goes out as one simple-protocol query, run whole as by the native engine. */
export async function executeScript(url, script) {
  await withClient(url, (client) => client.query(script));
}

/** getDatabaseVersion. */
export async function serverVersion(url) {
  const { rows } = await withClient(url, (client) => client.query('SELECT version()'));
  return rows[0].version;
}

/**
 * `cli create-database` / createDatabase. Like the native engine, connect to the server's
 * `postgres` database (or `template1`) to create the one the URL names.
 */
export async function createDatabase(url) {
  const { database } = describeUrl(url);
  await withMaintenanceClient(url, (client) => client.query(`CREATE DATABASE ${quoteIdent(database)}`));
  return database;
}

/** `cli drop-database`. */
export async function dropDatabase(url) {
  const { database } = describeUrl(url);
  await withMaintenanceClient(url, (client) => client.query(`DROP DATABASE ${quoteIdent(database)}`));
}

async function withMaintenanceClient(url, fn) {
  try {
    return await withClient(url, fn, 'postgres');
  } catch (error) {
    if (error.code !== '3D000') throw error;
    return withClient(url, fn, 'template1');
  }
}
