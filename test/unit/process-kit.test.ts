import {
  EnvError,
  OutageLog,
  Prisma,
  commonEnvSchema,
  endpointOf,
  isConnectionError,
  isDatabaseUnavailableError,
  parseEnv,
} from '@ledger/shared';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadReceiverEnv } from '../../apps/webhook-receiver/src/env.js';
import { loadWorkerEnv } from '../../apps/order-worker/src/env.js';

// The start-up and outage helpers every process shares, in milliseconds (no services needed).

const envError = (load: () => unknown) => {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(EnvError);
    return (error as Error).message;
  }
  throw new Error('expected an EnvError');
};

describe('environment messages name the variable and what is wrong with its value', () => {
  it.each([
    [{ PORT: 'abc' }, 'Invalid environment: PORT must be a number (got "abc")'],
    [{ PORT: '70000' }, 'Invalid environment: PORT must be at most 65535 (got "70000")'],
    [{ PORT: '3.5' }, 'Invalid environment: PORT must be an integer (got "3.5")'],
    [{ LOG_FORMAT: 'xml' }, 'Invalid environment: LOG_FORMAT must be one of json, pretty (got "xml")'],
    [{ STRIPE_SECRET_KEY: 'sk_test_x' }, 'Invalid environment: STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set'],
  ])('receiver %o', (env, message) => {
    expect(envError(() => loadReceiverEnv(env))).toBe(message);
  });

  it('a variable that is absent is "required", one that is empty counts as absent', () => {
    const schema = commonEnvSchema.extend({ NEEDED: z.coerce.number() });
    expect(envError(() => parseEnv(schema, {}))).toBe('Invalid environment: NEEDED is required');
    expect(envError(() => parseEnv(schema, { NEEDED: '' }))).toBe('Invalid environment: NEEDED is required');
  });

  it('several problems in one line', () => {
    expect(envError(() => loadWorkerEnv({ WORKER_CONCURRENCY: '0', WORKER_HEALTH_PORT: 'x' }))).toBe(
      'Invalid environment: WORKER_CONCURRENCY must be at least 1 (got "0"); WORKER_HEALTH_PORT must be a number (got "x")',
    );
  });
});

describe('endpoints in messages', () => {
  it('are host:port, never the credentials', () => {
    expect(endpointOf('postgresql://user:secret@db.internal:6543/ledger', 5432)).toBe('db.internal:6543');
    expect(endpointOf('redis://:secret@cache', 6379)).toBe('cache:6379');
    expect(endpointOf('not a url', 5432)).toBe('(unparseable URL)');
  });
});

describe('PostgreSQL unavailable or a bad query', () => {
  const known = (code: string, meta?: Record<string, unknown>) =>
    new Prisma.PrismaClientKnownRequestError('boom', { code, clientVersion: 'test', meta });
  const adapter = (cause: Record<string, unknown>) => known('P2010', { driverAdapterError: { name: 'DriverAdapterError', cause } });

  it.each([
    ['P1001 cannot reach the server', known('P1001'), true],
    ['P2024 pool timeout', known('P2024'), true],
    ['adapter: not reachable', adapter({ kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 5432 }), true],
    ['adapter: connection closed', adapter({ kind: 'ConnectionClosed' }), true],
    ['adapter: admin shutdown (57P01)', adapter({ kind: 'postgres', code: '57P01' }), true],
    ['pg: connection terminated', new Error('Connection terminated unexpectedly'), true],
    ['P2002 unique violation', known('P2002'), false],
    ['adapter: unique violation', adapter({ kind: 'UniqueConstraintViolation' }), false],
    ['adapter: syntax error (42601)', adapter({ kind: 'postgres', code: '42601' }), false],
    ['a plain bug', new TypeError('x is undefined'), false],
  ])('%s', (_name, error, unavailable) => {
    expect(isDatabaseUnavailableError(error)).toBe(unavailable);
  });
});

describe('an outage is logged once when it starts and once when it ends', () => {
  function recorder() {
    const lines: { level: string; msg: string }[] = [];
    const logger = {
      info: (_fields: object, msg: string) => lines.push({ level: 'info', msg }),
      error: (_fields: object, msg: string) => lines.push({ level: 'error', msg }),
    } as unknown as ConstructorParameters<typeof OutageLog>[0];
    return { lines, logger };
  }
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });

  it('many connection errors, one line; other errors are left to the caller', () => {
    const { lines, logger } = recorder();
    const outage = new OutageLog(logger, 'Redis', '127.0.0.1:6379');
    expect([1, 2, 3].map(() => outage.report(refused))).toEqual([true, true, true]);
    expect(outage.report(new Error('WRONGTYPE Operation against a key'))).toBe(false);
    outage.recovered();
    outage.recovered();
    expect(outage.report(refused)).toBe(true);
    expect(lines.map((line) => `${line.level} ${line.msg.replace(/after [\d.]+ s/, 'after N s')}`)).toEqual([
      'error Redis unreachable at 127.0.0.1:6379 (connect ECONNREFUSED 127.0.0.1:6379); retrying',
      'info Redis reachable again at 127.0.0.1:6379 after N s',
      'error Redis unreachable at 127.0.0.1:6379 (connect ECONNREFUSED 127.0.0.1:6379); retrying',
    ]);
    outage.close();
  });

  it('without a recovery event of its own, probes until the service answers', async () => {
    const { lines, logger } = recorder();
    let answers = false;
    let probes = 0;
    const outage = new OutageLog(
      logger,
      'PostgreSQL',
      'db:5432',
      async () => {
        probes += 1;
        if (!answers) throw new Error('still down');
      },
      5,
    );
    outage.report(refused);
    await expect.poll(() => probes, { timeout: 2_000 }).toBeGreaterThanOrEqual(2);
    expect(outage.down).toBe(true);
    answers = true;
    await expect.poll(() => outage.down, { timeout: 2_000 }).toBe(false);
    expect(lines.map((line) => line.level)).toEqual(['error', 'info']);
    outage.close();
  });

  it('knows connection errors from others', () => {
    expect(isConnectionError(refused)).toBe(true);
    expect(isConnectionError(new Error('Connection is closed.'))).toBe(true);
    expect(isConnectionError(new Error('ERR unknown command'))).toBe(false);
  });
});
