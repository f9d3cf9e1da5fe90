import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/**
 * Polls `check` every `intervalMs` until it returns true; throws, naming `what`, once `timeoutMs`
 * has passed. An error thrown by `check` ends the wait at once (a check catches what it expects,
 * such as a refused connection while a server boots).
 */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs = 20_000, what = 'a condition', intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
