import { Redis } from 'ioredis';
import { freePorts, startChild, waitUntil, type RunningProcess as ChildApp } from '@ledger/testkit';

/**
 * A redis-server of the run's own, on a free port, with an append-only file in `dir`: a restart
 * (even after SIGKILL) reloads the queues from it. `--save ""` turns RDB snapshots off so the AOF is
 * the only persistence; `noeviction` is BullMQ's production rule.
 */
export class ChaosRedis {
  private process: ChildApp | undefined;
  private starts = 0;
  restarts = 0;
  flushes = 0;

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly logDir: string,
  ) {}

  static async start(dir: string, logDir: string): Promise<ChaosRedis> {
    const [port] = await freePorts(1);
    const redis = new ChaosRedis(port!, dir, logDir);
    await redis.launch();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async launch(): Promise<void> {
    this.starts += 1;
    this.process = startChild({
      name: `redis-${this.starts}`,
      command: 'redis-server',
      args: [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--dir',
        this.dir,
        '--maxmemory-policy',
        'noeviction',
        '--protected-mode',
        'no',
      ],
      logDir: this.logDir,
    });
    const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    probe.on('error', () => undefined);
    try {
      await waitUntil(
        async () => {
          if (this.process?.done) throw new Error(`redis-server exited:\n${this.process.tail.join('\n')}`);
          if (probe.status !== 'ready') await probe.connect().catch(() => undefined);
          // While the AOF loads Redis answers LOADING: wait for a real PONG.
          return (await probe.ping().catch(() => undefined)) === 'PONG';
        },
        20_000,
        `redis-server on port ${this.port}`,
        50,
      );
    } finally {
      probe.disconnect();
    }
  }

  /**
   * Stops Redis with `signal` (SIGKILL: a crash; writes of the last second that the AOF had not
   * fsynced yet are gone), keeps it down for `downMs`, then starts it again on the same port and dir.
   */
  async restart(signal: NodeJS.Signals, downMs: number): Promise<void> {
    await this.process?.stop(signal, 5_000);
    await new Promise((resolve) => setTimeout(resolve, downMs));
    await this.launch();
    this.restarts += 1;
  }

  /**
   * Redis forgets everything it held, jobs already acknowledged to Stripe included (an operator's
   * FLUSHALL, a failover to an empty replica): only reconciliation can bring those events back.
   */
  async flush(): Promise<void> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 3 });
    try {
      await client.flushall();
      this.flushes += 1;
    } finally {
      client.disconnect();
    }
  }

  async stop(): Promise<void> {
    await this.process?.stop('SIGTERM', 5_000);
  }
}
