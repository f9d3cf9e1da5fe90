import { QUEUES, createWorkerConnection, stripeClientFromEnv, stripeScopeFromEnv } from '@ledger/shared';
import { Queue } from 'bullmq';
import { createWorkerMetrics } from '../metrics.js';
import { replayEvents } from '../operations/replay.js';
import { runCli } from './shared.js';

/** A Stripe event id (`evt_…`). */
const EVENT_ID = /^evt_[A-Za-z0-9_]{1,250}$/;

/** `npm run replay -- evt_… | --failed`: replays events and reports newly / already applied. */
await runCli(
  'replay',
  {
    usage: 'npm run replay -- <event id>… | --failed',
    summary:
      'Sends events back through the normal dedupe path (the payload of the kept job, else fetched from Stripe) and prints "newly applied" or "already applied" for each.',
    options: { failed: { type: 'boolean', description: 'replay every failed event job, and remove those that now succeed' } },
    positionals: 'event ids (evt_…), or none with --failed',
    exitCodes: [[1, 'an event failed again, bad environment, or PostgreSQL or Redis unreachable']],
    needsRedis: true,
    check: ({ values, positionals }) => {
      if (values.failed && positionals.length > 0) return '--failed takes no event ids';
      if (!values.failed && positionals.length === 0) return 'give event ids or --failed';
      const notEvent = positionals.find((id) => !EVENT_ID.test(id));
      return notEvent === undefined ? undefined : `"${notEvent}" is not an event id (evt_…)`;
    },
  },
  async ({ values, positionals: eventIds, env, prisma, logger }) => {
    const connection = createWorkerConnection(env.REDIS_URL);
    const eventsQueue = new Queue(QUEUES.stripeEvents, { connection, prefix: env.QUEUE_PREFIX });
    try {
      const results = await replayEvents(
        { prisma, eventsQueue, stripe: stripeClientFromEnv(env), scope: stripeScopeFromEnv(env), metrics: createWorkerMetrics(), logger },
        values.failed ? { failed: true } : { eventIds },
      );
      if (results.length === 0) console.log('nothing to replay');
      for (const result of results) console.log(`${result.eventId}: ${result.result} (${result.detail})`);
      const count = (kind: string) => results.filter((result) => result.result === kind).length;
      console.log(
        `${count('newly applied')} newly applied, ${count('already applied')} already applied, ${count('held')} held for review, ${count('not ours')} not ours, ${count('failed')} failed`,
      );
      return count('failed') > 0 ? 1 : 0;
    } finally {
      await eventsQueue.close();
      connection.disconnect();
    }
  },
);
