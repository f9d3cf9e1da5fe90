import { Redis } from 'ioredis';

/** Deletes every key under `prefix` (the bench's own BullMQ prefix; nothing else is touched). */
export async function deleteKeysWithPrefix(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

/**
 * Samples Redis's `used_memory` every `everyMs` until stopped: the peak above the first sample is
 * what a run added (Redis is shared: other users' changes meanwhile count too).
 */
export function sampleRedisMemory(redisUrl: string, everyMs = 500) {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  const read = async () => Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1] ?? NaN);
  let baseline: number | undefined;
  let peak = 0;
  let last = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      last = await read();
      baseline ??= last;
      peak = Math.max(peak, last);
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    /** Stops sampling; bytes above the first sample: at the peak and at the end. */
    async stop(): Promise<{ peakBytes: number; endBytes: number }> {
      stopped = true;
      await done;
      redis.disconnect();
      return { peakBytes: peak - (baseline ?? peak), endBytes: last - (baseline ?? last) };
    },
  };
}
