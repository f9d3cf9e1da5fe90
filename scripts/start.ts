/**
 * `npm start` and `npm run dev`: checks PostgreSQL and Redis, applies migrations, then runs the
 * webhook receiver and one order worker from source, and — when no STRIPE_SECRET_KEY is set — the
 * built-in Stripe emulator, wired to deliver its signed webhooks to the receiver. Each runs as its
 * own process, as in production; this one forwards SIGINT/SIGTERM, stops all of them if one exits,
 * and exits once every one has. `--watch` (npm run dev) restarts a process when its code changes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import {
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  EMULATOR_API_BASE,
  EMULATOR_WEBHOOK_SECRET,
  QUEUES,
  StartupError,
  createProducerConnection,
  parseCommandLine,
  probePostgres,
  probeRedis,
} from '@ledger/shared';
import { Queue } from 'bullmq';
import { developmentOrdersKey, hasOrdersAuth } from './dev-orders-key.js';

const { values } = parseCommandLine('start', {
  usage: 'npm start | npm run dev',
  summary:
    'Checks PostgreSQL and Redis, applies migrations, then runs the receiver, one worker and (without STRIPE_SECRET_KEY) the Stripe emulator from source, with readable logs (LOG_FORMAT=json for JSON). Stops them all on SIGINT/SIGTERM or when one exits.',
  options: { watch: { type: 'boolean', description: 'restart a process when its code changes (npm run dev)' } },
  environment: [
    'DATABASE_URL',
    'REDIS_URL',
    'PORT',
    'HOST',
    'STRIPE_SECRET_KEY',
    'STRIPE_API_BASE',
    'STRIPE_WEBHOOK_SECRET',
    'ADMIN_TOKEN',
    'LOG_FORMAT',
    'and every variable of the receiver and the worker',
  ],
  exitCodes: [
    [0, 'stopped by SIGINT or SIGTERM'],
    [1, 'PostgreSQL or Redis unreachable, a port taken, migrations failed, or a process exited on its own'],
    [64, 'unknown option'],
  ],
});

const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.PORT || '3000');
const receiverUrl = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
const useEmulator = !process.env.STRIPE_SECRET_KEY;
const emulatorUrl = new URL(process.env.STRIPE_API_BASE || EMULATOR_API_BASE);

const shared: NodeJS.ProcessEnv = { ...process.env, LOG_FORMAT: process.env.LOG_FORMAT || 'pretty' };
if (useEmulator) {
  shared.STRIPE_API_BASE = emulatorUrl.origin;
  shared.STRIPE_WEBHOOK_SECRET = process.env.STRIPE_WEBHOOK_SECRET || EMULATOR_WEBHOOK_SECRET;
}
// No orders credentials configured: a development service key, so `npm run demo` works with no setup
// (production refuses to start instead).
const devOrdersKey = hasOrdersAuth(process.env) || process.env.NODE_ENV === 'production' ? undefined : developmentOrdersKey();
if (devOrdersKey) shared.ORDERS_API_KEYS = devOrdersKey;

/** Prints one line and exits 1: what `npm start` cannot do, and what to change. */
function fail(message: string): never {
  console.error(`npm start: ${message}`);
  process.exit(1);
}

/** Resolves when nothing listens on host:port (a listen that succeeds, closed at once). */
async function portFree(listenHost: string, listenPort: number): Promise<boolean> {
  const server = createServer();
  server.listen(listenPort, listenHost);
  try {
    await once(server, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

// Everything a process would fail on, said once, before anything starts.
try {
  await Promise.all([
    probePostgres(process.env.DATABASE_URL || DEFAULT_DATABASE_URL, { databaseMayBeMissing: true }),
    probeRedis(process.env.REDIS_URL || DEFAULT_REDIS_URL),
  ]);
} catch (error) {
  if (error instanceof StartupError) fail(error.message);
  throw error;
}
const ports: { host: string; port: number; fix: string }[] = [{ host, port, fix: 'set PORT to a free port' }];
if (useEmulator)
  ports.push({
    host: emulatorUrl.hostname,
    port: Number(emulatorUrl.port || 80),
    fix: 'the emulator listens there: set STRIPE_API_BASE to a URL with a free port',
  });
for (const name of ['WORKER_HEALTH_PORT', 'WORKER_METRICS_PORT']) {
  if (process.env[name])
    ports.push({ host: process.env.WORKER_HTTP_HOST || '127.0.0.1', port: Number(process.env[name]), fix: `set ${name} to a free port` });
}
for (const taken of ports) {
  if (!(await portFree(taken.host, taken.port))) fail(`port ${taken.port} on ${taken.host} is already in use: ${taken.fix}`);
}

const migrate = spawnSync(process.execPath, ['tools/migrate/migrate.mjs'], { stdio: 'inherit' });
if (migrate.status !== 0) fail('migrations failed (see above)');

const children = new Map<string, ChildProcess>();
let stopping = false;

function run(name: string, script: string, env: NodeJS.ProcessEnv): void {
  const watch = values.watch ? ['--watch', '--watch-preserve-output'] : [];
  // A process group of its own: Ctrl+C (sent to the terminal's whole group) reaches only this
  // process, which passes on exactly one SIGTERM; a second signal would cut the worker's drain short.
  const child = spawn(process.execPath, [...watch, '--import', 'tsx', script], { env, stdio: 'inherit', detached: true });
  children.set(name, child);
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping) {
      console.error(`[start] ${name} exited (${signal ?? code}); stopping the others`);
      stop(1);
    } else if (children.size === 0) {
      process.exit(process.exitCode ?? 0);
    }
  });
}

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  if (children.size === 0) process.exit(code);
  for (const child of children.values()) child.kill('SIGTERM');
  // The worker lets active jobs finish; past this, whatever is left is killed.
  setTimeout(() => {
    for (const child of children.values()) child.kill('SIGKILL');
  }, 60_000).unref();
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => stop(0));

if (useEmulator) {
  run('stripe-emulator', 'packages/stripe-emulator/src/main.ts', {
    ...shared,
    STRIPE_EMULATOR_HOST: emulatorUrl.hostname,
    STRIPE_EMULATOR_PORT: emulatorUrl.port || '80',
    STRIPE_WEBHOOK_URL: `${receiverUrl}/webhooks/stripe`,
  });
}
run('webhook-receiver', 'apps/webhook-receiver/src/server.ts', shared);
run('order-worker', 'apps/order-worker/src/main.ts', shared);

/** Whether a worker has registered on the events queue (it does so only once warmed up). */
async function workerRegistered(): Promise<boolean> {
  const connection = createProducerConnection(process.env.REDIS_URL || DEFAULT_REDIS_URL);
  const queue = new Queue(QUEUES.stripeEvents, { connection, prefix: process.env.QUEUE_PREFIX || 'ledger' });
  try {
    return (await queue.getWorkersCount()) > 0;
  } catch {
    return false;
  } finally {
    await queue.close().catch(() => undefined);
    connection.disconnect();
  }
}

// The URLs once the receiver answers /readyz and the worker takes jobs (each listens or registers
// only once warmed up: WARM_UP_EVENTS), so that what is printed works, at full speed.
const startedAt = Date.now();
const deadline = startedAt + 60_000;
const receiverReady = () =>
  fetch(`${receiverUrl}/readyz`).then(
    (response) => response.ok,
    () => false,
  );
while (!stopping && !((await receiverReady()) && (await workerRegistered()))) {
  if (Date.now() > deadline) {
    console.error(`[start] the receiver (${receiverUrl}/readyz) and the worker were not both ready within 60 s; stopping`);
    stop(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
}
if (!stopping) {
  console.log(
    [
      '',
      `  receiver     ${receiverUrl}  (POST /orders, GET /orders/:id, POST /webhooks/stripe, /metrics, /readyz, /docs)`,
      `  bull board   ${receiverUrl}/admin/queues${process.env.ADMIN_TOKEN ? '' : '  (set ADMIN_TOKEN to enable)'}`,
      useEmulator
        ? `  stripe       emulator at ${emulatorUrl.origin} (set STRIPE_SECRET_KEY to use Stripe itself)`
        : `  stripe       ${process.env.STRIPE_API_BASE || 'api.stripe.com'}`,
      ...(devOrdersKey
        ? [`  orders key   ${devOrdersKey}  (development service key, kept in .dev/orders-api-key; set ORDERS_API_KEYS for your own)`]
        : []),
      `  demo         npm run demo`,
      `  ready        receiver and worker warmed up, ${((Date.now() - startedAt) / 1000).toFixed(1)} s after they were started`,
      '',
    ].join('\n'),
  );
}
