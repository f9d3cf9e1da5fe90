import { QUEUES, createWorkerConnection, stripeClientFromEnv, stripeScopeFromEnv } from '@ledger/shared';
import { Queue } from 'bullmq';
import { createWorkerMetrics } from '../metrics.js';
import { replayEvents } from '../replay.js';
import { runCli } from './shared.js';

const USAGE = 'usage: npm run replay -- <event id>… | --failed';

/** `npm run replay -- evt_… | --failed`: replays events and reports newly / already applied. */
await runCli('replay', async ({ env, prisma, logger }) => {
  const args = process.argv.slice(2);
  const failed = args.includes('--failed');
  const eventIds = args.filter((arg) => arg !== '--failed');
  if ((failed && eventIds.length > 0) || (!failed && eventIds.length === 0) || eventIds.some((id) => !/^evt_[A-Za-z0-9_]+$/.test(id))) {
    console.error(USAGE);
    return 64;
  }
  const connection = createWorkerConnection(env.REDIS_URL);
  const eventsQueue = new Queue(QUEUES.stripeEvents, { connection, prefix: env.QUEUE_PREFIX });
  try {
    const results = await replayEvents(
      { prisma, eventsQueue, stripe: stripeClientFromEnv(env), scope: stripeScopeFromEnv(env), metrics: createWorkerMetrics(), logger },
      failed ? { failed: true } : { eventIds },
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
});
