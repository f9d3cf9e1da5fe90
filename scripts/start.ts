/**
 * `npm start` (after `npm run migrate`): runs the webhook receiver and one order worker, and —
 * when no STRIPE_SECRET_KEY is set — the built-in Stripe emulator, wired to deliver its signed
 * webhooks to the receiver. Each runs as its own process, as in production; this one forwards
 * SIGINT/SIGTERM and stops all of them if any exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EMULATOR_API_BASE, EMULATOR_WEBHOOK_SECRET } from '@ledger/shared';
import { developmentOrdersKey, hasOrdersAuth } from './support/dev-orders-key.js';

const host = process.env.HOST || '127.0.0.1';
const port = process.env.PORT || '3000';
const receiverUrl = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
const useEmulator = !process.env.STRIPE_SECRET_KEY;
const emulatorBase = process.env.STRIPE_API_BASE || EMULATOR_API_BASE;

const shared: NodeJS.ProcessEnv = { ...process.env };
if (useEmulator) {
  shared.STRIPE_API_BASE = emulatorBase;
  shared.STRIPE_WEBHOOK_SECRET = process.env.STRIPE_WEBHOOK_SECRET || EMULATOR_WEBHOOK_SECRET;
}
// No orders credentials configured: a development service key, so `npm run demo` works with no setup
// (production refuses to start instead).
const devOrdersKey = hasOrdersAuth(process.env) || process.env.NODE_ENV === 'production' ? undefined : developmentOrdersKey();
if (devOrdersKey) shared.ORDERS_API_KEYS = devOrdersKey;

const children = new Map<string, ChildProcess>();
let stopping = false;

function run(name: string, script: string, env: NodeJS.ProcessEnv): void {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env, stdio: 'inherit' });
  children.set(name, child);
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping) {
      console.error(`[start] ${name} exited (${signal ?? code}); stopping the others`);
      void stop(1);
    } else if (children.size === 0) {
      process.exit(process.exitCode ?? 0);
    }
  });
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  for (const child of children.values()) child.kill('SIGTERM');
  if (children.size === 0) process.exit(code);
  setTimeout(() => {
    for (const child of children.values()) child.kill('SIGKILL');
  }, 20_000).unref();
}

process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

if (useEmulator) {
  const emulatorUrl = new URL(emulatorBase);
  run('stripe-emulator', 'apps/stripe-emulator/src/main.ts', {
    ...shared,
    STRIPE_EMULATOR_HOST: emulatorUrl.hostname,
    STRIPE_EMULATOR_PORT: emulatorUrl.port || '12111',
    STRIPE_WEBHOOK_URL: `${receiverUrl}/webhooks/stripe`,
  });
}
run('webhook-receiver', 'apps/webhook-receiver/src/server.ts', shared);
run('order-worker', 'apps/order-worker/src/main.ts', shared);

console.log(
  [
    '',
    `  receiver     ${receiverUrl}  (POST /orders, GET /orders/:id, POST /webhooks/stripe, /metrics, /readyz)`,
    `  bull board   ${receiverUrl}/admin/queues${process.env.ADMIN_TOKEN ? '' : '  (set ADMIN_TOKEN to enable)'}`,
    useEmulator
      ? `  stripe       emulator at ${emulatorBase} (set STRIPE_SECRET_KEY to use Stripe itself)`
      : `  stripe       ${process.env.STRIPE_API_BASE || 'api.stripe.com'}`,
    ...(devOrdersKey ? [`  orders key   ${devOrdersKey}  (development service key, kept in .dev/orders-api-key; set ORDERS_API_KEYS for your own)`] : []),
    `  demo         npm run demo`,
    '',
  ].join('\n'),
);
