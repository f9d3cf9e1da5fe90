#!/usr/bin/env node
// A stand-in for Prisma's native `schema-engine` binary, which the Prisma CLI would otherwise
// download at start-up. Point PRISMA_SCHEMA_ENGINE_BINARY at this file (tools/prisma-offline/prisma.mjs
// does) and the CLI spawns it like the native engine:
//
//   schema-engine --version
//   schema-engine --datasource <json> cli can-connect-to-database|create-database|drop-database
//   schema-engine [--datamodels <file>]... [--datasource <json>]        (JSON-RPC server)
//
// The server reads one JSON-RPC 2.0 request per line on stdin and answers on stdout; logs go to
// stderr as JSON lines shaped like the native engine's tracing output. Requests are served by
// the official WebAssembly build of the same engine (shipped inside the `prisma` package), talking
// to PostgreSQL through @prisma/adapter-pg. Only PostgreSQL is supported.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';

import {
  canConnect,
  createAdapterFactory,
  createDatabase,
  createOfflineAdapterFactory,
  describeUrl,
  dropDatabase,
  executeScript,
  serverVersion,
  userFacingError,
} from './postgres.mjs';
import { loadSchemaEngine } from './wasm-engine.mjs';

const WASM_PATH = path.join(path.dirname(createRequire(import.meta.url).resolve('prisma/package.json')), 'build', 'schema_engine_bg.wasm');

/** JSON-RPC error code the native engine uses for every engine error (details go in `data`). */
const ENGINE_ERROR_CODE = 4466;

/** An error carrying a Prisma error code (P1001, P3005, ...) when there is one. */
class EngineError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// Output. The parent may close our pipes at any time (it kills the engine when it is done), so
// write errors are ignored rather than crashing the clean-up that follows.

for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

/** One tracing-style JSON log line on stderr: the CLI reads `level` and `fields` of each line. */
function log(level, message, fields = {}, target = 'schema_engine') {
  const line = { timestamp: new Date().toISOString(), level, fields: { message, ...fields }, target };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

function send(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

// ---------------------------------------------------------------------------------------------
// Command line (the native engine's flags; preview features and extension types do not apply to
// the Wasm engine and are accepted for compatibility only).

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    version: { type: 'boolean', short: 'V' },
    datamodels: { type: 'string', short: 'd', multiple: true },
    datasource: { type: 'string' },
    'enabled-preview-features': { type: 'string' },
    'extension-types': { type: 'string' },
  },
});

/** { url?, shadowDatabaseUrl? } from the Prisma config, as the CLI passes it. */
const datasource = flags.datasource ? JSON.parse(flags.datasource) : {};

// ---------------------------------------------------------------------------------------------
// `cli` subcommands: the outcome is reported on stderr only. The CLI skips the first log line and
// looks for an ERROR line from target `schema_engine::logger` carrying `error_code` and `message`.

async function runCliCommand(command) {
  log('INFO', 'Starting schema engine CLI');
  const commands = {
    'can-connect-to-database': async () => {
      await canConnect(requireUrl());
      return 'Connection successful';
    },
    'create-database': async () => `Database '${await createDatabase(requireUrl())}' was successfully created.`,
    'drop-database': async () => {
      await dropDatabase(requireUrl());
      return 'The database was successfully dropped.';
    },
  };
  try {
    if (!commands[command]) throw new EngineError(`Unknown cli command: ${command}`);
    log('INFO', await commands[command]());
  } catch (error) {
    const { code, message } = toEngineError(error);
    log('ERROR', message, { is_panic: false, error_code: code ?? '' }, 'schema_engine::logger');
    process.exitCode = 1;
  }
}

function requireUrl(url = datasource.url) {
  if (!url) throw new EngineError('No datasource URL: set `datasource.url` in the Prisma config file.');
  return url;
}

/** Normalizes pg and engine errors to { code, message } with Prisma error codes. */
function toEngineError(error, url = datasource.url) {
  if (/^P\d{4}$/.test(error?.code ?? '')) return { code: error.code, message: error.message };
  if (url && error?.code) return userFacingError(error, url);
  return { code: undefined, message: error?.message ?? String(error) };
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC server.

/** Methods served by the Wasm engine as they are. */
const ENGINE_METHODS = [
  'applyMigrations',
  'devDiagnostic',
  'diagnoseMigrationHistory',
  'introspect',
  'markMigrationApplied',
  'markMigrationRolledBack',
  'reset',
  'schemaPush',
];

async function runRpcServer() {
  log('INFO', 'Starting schema engine RPC server');
  const wasm = await loadSchemaEngine(WASM_PATH);
  const schemaFiles = (flags.datamodels ?? []).map((file) => [file, readFileSync(file, 'utf8')]);
  const adapters = datasource.url ? createAdapterFactory(datasource) : undefined;

  /** Requests to the CLI (the engine's `print`), by id; the CLI answers each with an empty result. */
  const clientCalls = new Map();
  let nextClientCallId = 0;
  const callClient = (method, params) =>
    new Promise((resolve) => {
      const id = nextClientCallId++;
      clientCalls.set(id, resolve);
      send({ jsonrpc: '2.0', method, params, id });
    });

  /**
   * The engine's tracing output goes to stderr unchanged. The native engine also tells the CLI
   * which migration it is applying (a `print` that `migrate deploy` / `migrate dev` show); the
   * Wasm engine has no such channel, so that line is derived from the matching log event.
   */
  const forwardEngineLog = (text) => {
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      process.stderr.write(`${line}\n`);
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        continue;
      }
      const applying = /^Applying `(.*)`$/.exec(event.fields?.message ?? '');
      if (applying && event.target === 'schema_commands::commands::apply_migrations') {
        callClient('print', { content: `Applying migration \`${applying[1]}\`` });
      }
    }
  };

  /**
   * Engine instances (promises), created on first use: one on the database, and one for requests
   * that need none. A failed start is forgotten, so the next request tries again.
   */
  let engine;
  let offlineEngine;
  const startEngine = (factory) =>
    wasm.SchemaEngine.new({ datamodels: schemaFiles.length > 0 ? schemaFiles : null }, forwardEngineLog, factory);
  const getEngine = () => {
    if (!adapters) requireUrl();
    engine ??= startEngine(adapters.factory).catch((error) => {
      engine = undefined;
      throw error;
    });
    return engine;
  };
  const getOfflineEngine = () => {
    offlineEngine ??= startEngine(createOfflineAdapterFactory(datasource.url ? describeUrl(datasource.url) : {}));
    return offlineEngine;
  };

  /**
   * evaluateDataLoss and createMigration take the schema that the migrations directory produces
   * from a cache that diagnosing the history fills (using a shadow database from our factory).
   * Right after `migrate dev` has applied pending migrations that cache is empty, and the Wasm
   * engine then fails trying to open a shadow database on its own. Diagnosing again fills it.
   */
  const withMigrationsSchema = (method) => async (params) => {
    const current = await getEngine();
    try {
      return await current[method](params);
    } catch (error) {
      if (!/shadow DB must be provided through an external factory/.test(error?.message)) throw error;
      await current.diagnoseMigrationHistory({
        migrationsList: params.migrationsList,
        optInToShadowDatabase: true,
        filters: params.filters,
      });
      return current[method](params);
    }
  };

  const urlFrom = (param) => requireUrl(['ConnectionString', 'url'].includes(param?.tag) ? param.url : undefined);

  const methods = {
    ...Object.fromEntries(ENGINE_METHODS.map((method) => [method, async (params) => (await getEngine())[method](params)])),
    evaluateDataLoss: withMigrationsSchema('evaluateDataLoss'),
    createMigration: withMigrationsSchema('createMigration'),
    async diff(params) {
      // Diffs between Prisma schemas and "empty" need no database, as with the native engine.
      const usesDatabase = [params.from, params.to].some((target) => !['empty', 'schemaDatamodel'].includes(target?.tag));
      const { exitCode, stdout } = await (await (usesDatabase ? getEngine() : getOfflineEngine())).diff(params);
      // Like the native engine: the CLI prints the diff (honouring `--output`); it comes without
      // its final newline and is not part of the result.
      if (stdout) await callClient('print', { content: stdout.replace(/\n$/, '') });
      return { exitCode, stdout: null };
    },
    // Database-level requests run directly on PostgreSQL, for the URL they name.
    createDatabase: async (params) => ({ databaseName: await createDatabase(urlFrom(params.datasource)) }),
    async ensureConnectionValidity(params) {
      await canConnect(urlFrom(params.datasource));
      return {};
    },
    async dbExecute(params) {
      await executeScript(urlFrom(params.datasourceType), params.script);
      return null;
    },
    getDatabaseVersion: () => serverVersion(requireUrl()),
    introspectSql() {
      throw new EngineError(
        'TypedSQL (`prisma generate --sql`) is not available offline: the WebAssembly schema engine used by ' +
          'tools/prisma-offline cannot introspect SQL queries. Run it with the native schema engine instead.',
      );
    },
    async debugPanic() {
      (await getEngine()).debugPanic();
    },
  };

  /**
   * After a Rust panic the Wasm instance is unusable, so every later request gets the same error.
   * Unlike the native engine, which exits on a panic, the bridge answers and keeps running until
   * the CLI stops it: the CLI reliably reports an answered panic, but when the engine exits on its
   * own it can miss that and end with status 0.
   */
  let panicked;
  /** Fails the request in flight; used for errors the engine throws outside of it. */
  let failCurrent;

  async function handle(request) {
    const reply = (payload) => request.id !== undefined && send({ jsonrpc: '2.0', id: request.id, ...payload });
    if (!Object.hasOwn(methods, request.method)) {
      reply({ error: { code: -32601, message: 'Method not found' } });
      return;
    }
    try {
      if (panicked) throw panicked;
      const failed = new Promise((_, reject) => {
        failCurrent = reject;
      });
      reply({ result: (await Promise.race([methods[request.method](request.params ?? {}), failed])) ?? null });
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) {
        panicked ??= error;
        const message = wasm.panicMessage() ?? error.message;
        log('ERROR', message, { is_panic: true, backtrace: error.stack }, 'schema_engine::logger');
        reply({ error: { code: ENGINE_ERROR_CODE, message, data: { is_panic: true, message, backtrace: error.stack } } });
        return;
      }
      const { code, message } = toEngineError(error);
      const data = code ? { is_panic: false, message, error_code: code } : { is_panic: false, message, backtrace: null };
      reply({ error: { code: ENGINE_ERROR_CODE, message: 'An error happened. Check the data field for details.', data } });
    } finally {
      failCurrent = undefined;
    }
  }

  // Errors thrown while the engine polls its futures (panics included) surface here.
  const onStrayError = (error) => {
    if (failCurrent) failCurrent(error);
    else log('ERROR', error?.message ?? String(error), { is_panic: false }, 'schema_engine::logger');
  };
  process.on('uncaughtException', onStrayError);
  process.on('unhandledRejection', onStrayError);

  // One request at a time: the engine's methods take `&mut self`, so calls must not overlap.
  let queue = Promise.resolve();
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  input.on('line', (line) => {
    if (!line.trim()) return;
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      send({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
      return;
    }
    if (typeof message.method === 'string') {
      queue = queue.then(() => handle(message));
    } else if (clientCalls.has(message.id)) {
      clientCalls.get(message.id)(message.result);
      clientCalls.delete(message.id);
    }
  });

  // The CLI stops the engine by closing stdin and, right away, sending SIGTERM. Finish the current
  // request (within the native engine's 4 s grace period), then close the connections (releasing
  // the migration lock) and drop any temporary shadow database still there.
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      setTimeout(() => process.exit(1), 4000);
      for (const resolve of clientCalls.values()) resolve(); // nobody is left to answer them
      await queue;
      await adapters?.close().catch(() => {});
      process.exit(0);
    })();
  };
  input.on('close', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// ---------------------------------------------------------------------------------------------

if (flags.version) {
  const { version } = await loadSchemaEngine(WASM_PATH);
  process.stdout.write(`schema-engine-cli ${version()}\n`);
} else if (positionals[0] === 'cli') {
  await runCliCommand(positionals[1]);
} else {
  await runRpcServer();
}
