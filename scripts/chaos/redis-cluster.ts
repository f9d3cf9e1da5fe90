import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePorts, startChild, waitUntil, type RunningProcess as ChildApp } from '@ledger/testkit';

/** Each node also listens on its port + 10000 (the cluster bus), which must be a port too. */
const CLUSTER_BUS_OFFSET = 10_000;

interface ClusterNode {
  port: number;
  process: ChildApp;
  killed: boolean;
}

/**
 * A Redis Cluster of the run's own on loopback: 3 masters and 3 replicas (`redis-server
 * --cluster-enabled yes`, joined by `redis-cli --cluster create`), each with an append-only file.
 * `killMasterOf(key)` SIGKILLs the master serving a key's slot, so its replica is promoted: a real
 * failover, with whatever the replica had not received yet lost (replication is asynchronous).
 */
export class ChaosRedisCluster {
  private readonly nodes: ClusterNode[] = [];
  failovers = 0;

  private constructor(
    private readonly dir: string,
    private readonly logDir: string,
    /** How long a master may be silent before the cluster fails it over. */
    private readonly nodeTimeoutMs: number,
  ) {}

  static async start(dir: string, logDir: string, nodeTimeoutMs = 1_000): Promise<ChaosRedisCluster> {
    const cluster = new ChaosRedisCluster(dir, logDir, nodeTimeoutMs);
    try {
      await cluster.launch();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The connection string the apps take (`REDIS_URL`). */
  get url(): string {
    return `redis+cluster://${this.nodes
      .filter((node) => !node.killed)
      .map((node) => `127.0.0.1:${node.port}`)
      .join(',')}`;
  }

  private async launch(): Promise<void> {
    const ports = await freePorts(6, { partnerOffset: CLUSTER_BUS_OFFSET });
    for (const port of ports) {
      const dir = join(this.dir, String(port));
      await mkdir(dir, { recursive: true });
      const process = startChild({
        name: `redis-cluster-${port}`,
        command: 'redis-server',
        args: [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--cluster-node-timeout',
          String(this.nodeTimeoutMs),
          '--save',
          '',
          '--appendonly',
          'yes',
          '--dir',
          dir,
          '--maxmemory-policy',
          'noeviction',
          // A replica's first sync starts at once instead of after the default 5 s.
          '--repl-diskless-sync-delay',
          '0',
          '--protected-mode',
          'no',
        ],
        logDir: this.logDir,
      });
      this.nodes.push({ port, process, killed: false });
    }
    for (const node of this.nodes) {
      await waitUntil(async () => (await this.ping(node.port)) === 'PONG', 20_000, `redis-server on port ${node.port}`, 50);
    }
    const create = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...this.nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1', '--cluster-yes'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    await this.waitHealthy();
    // A replica that has not finished its first sync never takes over: a master killed before that
    // would leave its slots without a master for good.
    await waitUntil(async () => (await this.replicasInSync()) === 3, 30_000, 'the 3 replicas to finish their first sync', 100);
  }

  /** Replicas whose link to their master is up. */
  private async replicasInSync(): Promise<number> {
    let count = 0;
    for (const node of this.nodes.filter((candidate) => !candidate.killed)) {
      // A node that does not answer has no replica in sync.
      const info = await askNode(node.port, (client) => client.info('replication')).catch(() => '');
      if (/role:slave/.test(info) && /master_link_status:up/.test(info)) count += 1;
    }
    return count;
  }

  private async ping(port: number): Promise<string | undefined> {
    return askNode(port, (client) => client.ping()).catch(() => undefined);
  }

  /**
   * Runs `question` on one live node after another until one answers. A plain connection with a
   * timeout, not a cluster client: one of those waits out a failover instead of answering.
   */
  private async ask<T>(question: (client: Redis) => Promise<T>): Promise<T> {
    let lastError: unknown = new Error('no live node');
    for (const node of this.nodes.filter((candidate) => !candidate.killed)) {
      try {
        return await askNode(node.port, question);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  /** Every live node says the cluster is ok and every slot is served by a live master. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await waitUntil(
      async () => {
        for (const node of this.nodes.filter((candidate) => !candidate.killed)) {
          const info = await askNode(node.port, (client) => client.cluster('INFO')).catch(() => '');
          if (!/cluster_state:ok/.test(String(info))) return false;
        }
        return true;
      },
      timeoutMs,
      'the Redis Cluster to report cluster_state:ok',
      100,
    );
  }

  /** The port of the master that serves `key`'s slot now, as a live node sees it. */
  async masterPortOf(key: string): Promise<number> {
    return this.ask(async (client) => {
      const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
      const slots = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
      const master = slots.find(([from, to]) => slot >= from && slot <= to)?.[2];
      if (!master) throw new Error(`no master serves slot ${slot}`);
      return master[1];
    });
  }

  /**
   * SIGKILLs the master serving `key` and waits until its replica has taken over its slots (the
   * cluster is ok again). Returns the killed port and how long the slots had no master.
   */
  async killMasterOf(key: string): Promise<{ port: number; failoverMs: number }> {
    const port = await this.masterPortOf(key);
    const node = this.nodes.find((candidate) => candidate.port === port);
    if (!node) throw new Error(`no node on port ${port}`);
    node.killed = true;
    const started = Date.now();
    await node.process.stop('SIGKILL', 0);
    await waitUntil(async () => (await this.masterPortOf(key).catch(() => port)) !== port, 60_000, 'a replica to be promoted', 100);
    await this.waitHealthy();
    this.failovers += 1;
    return { port, failoverMs: Date.now() - started };
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.filter((node) => !node.killed).map((node) => node.process.stop('SIGTERM', 5_000)));
  }
}

/** Asks one node one question on a connection of its own, bounded by a 1 s timeout, then drops it. */
async function askNode<T>(port: number, question: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    connectTimeout: 1_000,
    commandTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await question(client);
  } finally {
    client.disconnect();
  }
}
