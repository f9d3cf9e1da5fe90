import { createStripeClient, type Stripe } from '@ledger/shared';
import { closeAll } from '@ledger/testkit';
import type { FastifyInstance } from 'fastify';
import type { OrderWorkerDeps, OrderWorkers } from '../../apps/order-worker/src/jobs/workers.js';
import { buildStripeEmulator, type StripeEmulator, type StripeEmulatorOptions } from '../../packages/stripe-emulator/src/app.js';
import type { TestDatabase } from './database.js';
import { buildTestReceiver, WEBHOOK_SECRETS } from './receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './redis.js';
import { startTestWorkers } from './workers.js';

export const EMULATOR_KEY = 'sk_test_system';

/** The whole system on real services: emulator, listening receiver, in-process order workers. */
export interface TestSystem {
  emulator: StripeEmulator;
  receiver: FastifyInstance;
  receiverUrl: string;
  stripe: Stripe;
  workers: OrderWorkers | undefined;
  prefix: string;
  close(): Promise<void>;
}

export async function startTestSystem(
  db: TestDatabase,
  options: {
    emulator?: StripeEmulatorOptions;
    /** false: no workers; an object: their options (a lock duration, a stalled-job check interval). */
    workers?: boolean | Pick<OrderWorkerDeps, 'lockDurationMs' | 'stalledIntervalMs'>;
  } = {},
): Promise<TestSystem> {
  const prefix = uniquePrefix();
  const emulator = buildStripeEmulator({ webhookSecret: WEBHOOK_SECRETS[0], ...options.emulator });
  const emulatorUrl = await emulator.app.listen({ port: 0, host: '127.0.0.1' });
  const stripe = createStripeClient(EMULATOR_KEY, emulatorUrl);
  const receiver = await buildTestReceiver({ databaseUrl: db.url, prefix, stripe });
  const receiverUrl = await receiver.listen({ port: 0, host: '127.0.0.1' });
  emulator.controller.configure({ webhookUrl: `${receiverUrl}/webhooks/stripe` });

  const workerOptions = typeof options.workers === 'object' ? options.workers : {};
  const workers = options.workers === false ? undefined : startTestWorkers({ prisma: db.prisma, prefix, stripe, ...workerOptions });
  return {
    emulator,
    receiver,
    receiverUrl,
    stripe,
    workers: workers?.workers,
    prefix,
    async close() {
      // Same order as production: stop intake, then workers, then connections; each step runs, and
      // any that failed fails the test.
      await closeAll('closing the test system', [
        () => emulator.app.close(),
        () => receiver.close(),
        () => workers?.close(),
        () => deleteKeysWithPrefix(prefix),
      ]);
    },
  };
}
