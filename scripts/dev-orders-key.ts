import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `npm start` keeps the development service key it made, for `npm run demo` (gitignored). */
export const DEV_ORDERS_KEY_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../.dev/orders-api-key');

/** Variables that configure orders credentials; with none of them set the orders API is closed. */
const ORDERS_AUTH_VARIABLES = [
  'ORDERS_API_KEYS',
  'ORDERS_JWT_SECRET',
  'ORDERS_JWT_PUBLIC_KEY',
  'ORDERS_JWT_PUBLIC_KEY_FILE',
  'ORDERS_JWKS_FILE',
];

export function hasOrdersAuth(env: NodeJS.ProcessEnv): boolean {
  return ORDERS_AUTH_VARIABLES.some((name) => Boolean(env[name]));
}

function readKey(): string | undefined {
  try {
    return readFileSync(DEV_ORDERS_KEY_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The development service key: the one an earlier `npm start` made (clients keep working), else a new one. */
export function developmentOrdersKey(): string {
  const existing = readKey();
  if (existing) return existing;
  const key = `dev_${randomBytes(24).toString('base64url')}`;
  mkdirSync(path.dirname(DEV_ORDERS_KEY_FILE), { recursive: true, mode: 0o700 });
  writeFileSync(DEV_ORDERS_KEY_FILE, `${key}\n`, { mode: 0o600 });
  return key;
}

/** The service key the demo calls with: ORDERS_API_KEY, else the first of ORDERS_API_KEYS, else `npm start`'s. */
export function demoOrdersKey(env: NodeJS.ProcessEnv): string | undefined {
  return env.ORDERS_API_KEY || env.ORDERS_API_KEYS?.split(',')[0]?.trim() || readKey();
}
