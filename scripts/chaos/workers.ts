/** The chaos run's worker processes. */
import { sleep, startChild, waitUntil, type Rng, type RunningProcess as ChildApp } from '@ledger/testkit';

/** The order-worker processes: started, killed at random, restarted, crash-watched. */
export class WorkerPool {
  private readonly live = new Map<string, { app: ChildApp; startedAt: number | undefined; killed: boolean }>();
  private readonly restarts = new Set<Promise<void>>();
  private started = 0;
  private closing = false;
  kills = 0;
  restartCount = 0;
  /** Workers that refused to start because Redis or PostgreSQL was down at that moment (fail fast). */
  refusedStarts = 0;
  stalled = 0;
  retried = 0;
  readonly crashes: string[] = [];

  constructor(
    private readonly env: Record<string, string>,
    private readonly logDir: string,
    private readonly rng: Rng,
    private readonly log: (line: string) => void,
    private readonly niceness: number | undefined,
  ) {}

  spawn(): void {
    this.started += 1;
    const name = `worker-${this.started}`;
    const entry = { app: undefined as unknown as ChildApp, startedAt: undefined as number | undefined, killed: false };
    entry.app = startChild({
      name,
      script: 'apps/order-worker/src/main.ts',
      env: this.env,
      logDir: this.logDir,
      niceness: this.niceness,
      onLine: (line) => {
        if (line.includes('order worker started')) entry.startedAt = Date.now();
        else if (line.includes('job stalled')) this.stalled += 1;
        else if (line.includes('job failed, will retry')) this.retried += 1;
      },
    });
    this.live.set(name, entry);
    void entry.app.exited.then((code) => {
      this.live.delete(name);
      if (entry.killed || this.closing) return;
      // Started while Redis or PostgreSQL was down, it stopped at once as it should: a supervisor
      // starts it again a moment later.
      if (entry.startedAt === undefined && entry.app.tail.some((line) => line.includes(' cannot start: '))) {
        this.refusedStarts += 1;
        this.log(`${name} refused to start (${entry.app.tail.at(-1)}); starting another in 1 s`);
        this.later(1_000, () => this.spawn());
        return;
      }
      // Nobody killed it: a crash. Note it (it is a finding) and keep the pool at strength.
      this.crashes.push(`${name} exited (${code}): ${entry.app.tail.slice(-5).join(' | ')}`);
      this.log(`!! ${name} crashed (${code}); restarting it`);
      this.spawn();
    });
  }

  /** Workers that finished booting at least `minUpMs` ago: killing one mid-boot proves little. */
  private ready(minUpMs: number) {
    return [...this.live.values()].filter(
      (entry) => !entry.killed && entry.startedAt !== undefined && Date.now() - entry.startedAt >= minUpMs,
    );
  }

  private async kill(entries: { app: ChildApp; killed: boolean }[]): Promise<void> {
    for (const entry of entries) entry.killed = true;
    await Promise.all(entries.map((entry) => entry.app.stop('SIGKILL', 0)));
    this.kills += entries.length;
    // Back after a moment, as a supervisor (systemd, Kubernetes) would bring it back.
    this.later(this.rng.int(200, 1_500), () => {
      for (let i = 0; i < entries.length; i += 1) {
        this.spawn();
        this.restartCount += 1;
      }
    });
  }

  /** Runs `start` after `delayMs` unless the pool is closing by then; close() waits for it. */
  private later(delayMs: number, start: () => void): void {
    const restart = sleep(delayMs).then(() => {
      if (!this.closing) start();
    });
    this.restarts.add(restart);
    void restart.finally(() => this.restarts.delete(restart));
  }

  async killOne(): Promise<string> {
    await waitUntil(async () => this.ready(500).length > 0, 60_000, 'a booted worker to kill', 50);
    const entry = this.rng.pick(this.ready(500));
    await this.kill([entry]);
    return entry.app.name;
  }

  async killAll(): Promise<number> {
    await waitUntil(async () => this.ready(0).length > 0, 60_000, 'booted workers to kill', 50);
    const entries = [...this.live.values()].filter((entry) => !entry.killed);
    await this.kill(entries);
    return entries.length;
  }

  /** Waits for pending restarts, then for every worker to have booted. */
  async settle(timeoutMs = 60_000): Promise<void> {
    await Promise.all(this.restarts);
    await waitUntil(
      async () => [...this.live.values()].every((entry) => entry.startedAt !== undefined),
      timeoutMs,
      'restarted workers to boot',
      100,
    );
  }

  async stop(): Promise<void> {
    this.closing = true;
    await Promise.all(this.restarts);
    await Promise.all([...this.live.values()].map((entry) => entry.app.stop('SIGTERM', 10_000)));
  }
}
