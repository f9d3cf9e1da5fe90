import { performance } from 'node:perf_hooks';

/**
 * Open loop, as Stripe's deliveries and a busy API's clients arrive: the i-th of `total` is due
 * at `start` + i / `rate` (performance.now() milliseconds) whether or not earlier ones were
 * answered. Every tick sends whatever is due by now, so a late timer delays sends but never drops
 * them. `send` gets the index and its due time; resolves once the last one was sent.
 */
export function sendAtFixedRate(total: number, rate: number, start: number, send: (index: number, dueAt: number) => void): Promise<void> {
  const intervalMs = 1000 / rate;
  let next = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && start + next * intervalMs <= now) {
        send(next, start + next * intervalMs);
        next += 1;
      }
      if (next < total) setTimeout(tick, Math.max(0, start + next * intervalMs - performance.now()));
      else resolve();
    };
    tick();
  });
}
