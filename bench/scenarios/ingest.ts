import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { QUEUES } from '@ledger/shared';
import { freePort, runScript, type RunningProcess } from '@ledger/testkit';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { deleteKeysWithPrefix } from '../lib/bench-redis.js';
import type { IngestLoadOptions } from '../lib/ingest-load.js';
import { readServiceCpu, serviceCpuUsed } from '../lib/service-cpu.js';
import { median } from '../lib/stats.js';
import { startBareFastify, startReceiver, type RunContext } from '../lib/system-processes.js';

/** One autocannon run, as `ingest-load.ts` reports it, plus what it works out to. */
export interface LoadRun {
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationSeconds: number;
  latencyMs: { p50: number; p99: number; max: number };
  bodyBytes: number;
  /** 2xx answers per second. */
  requestsPerSecond: number;
  answeredIncludingWarmup: number;
  /** CPU time of the server process per answered request (warm-up included), in ms. */
  serverCpuMsPerRequest: number;
  /** Redis CPU per answered request, in ms (Redis's own counter: other clients included). */
  redisCpuMsPerRequest: number;
  /** The load generator's own CPU per answered request (start-up included), in ms. */
  generatorCpuMsPerRequest: number;
  /** Jobs the receiver put in the queue during the run (receiver runs only). */
  enqueued?: number;
}

export interface IngestResult {
  connections: number;
  seconds: number;
  bare: LoadRun[];
  receiver: LoadRun[];
  /** One fixed body: after the first request every one takes the duplicate path. */
  receiverDuplicate: LoadRun;
  /**
   * A receiver with tracing ON (OTEL_EXPORTER_OTLP_ENDPOINT at a sink in this process that takes
   * and drops every export), once, after the rounds; `tracingRatio` is its req/s ÷ the median
   * receiver's (tracing off: the figure above).
   */
  receiverTracing: LoadRun & { spansExportedBytes: number };
  tracingRatio: number;
  /** Median receiver req/s ÷ median bare Fastify req/s. */
  ratio: number;
  /** Median server CPU ms per request: what each request costs, whatever else the machine runs. */
  cpuMsPerRequest: { receiver: number; bare: number };
  /** Median Redis CPU ms per request taken by the receiver. */
  redisCpuMsPerRequest: number;
  /** Median load-generator CPU ms per request, against the receiver and against bare Fastify. */
  generatorCpuMsPerRequest: { receiver: number; bare: number };
  /** Peak RSS of the receiver and of the bare Fastify process after their full-speed runs, in bytes. */
  receiverPeakRss: number;
  bareFastifyPeakRss: number;
}

async function load(
  context: RunContext,
  server: RunningProcess,
  options: Omit<IngestLoadOptions, 'connections' | 'seconds' | 'warmupSeconds'>,
): Promise<LoadRun> {
  const { config } = context;
  const full: IngestLoadOptions = {
    ...options,
    connections: config.ingestConnections,
    seconds: config.ingestSeconds,
    warmupSeconds: config.ingestWarmupSeconds,
  };
  const cpuBefore = server.cpuMs();
  const servicesBefore = await readServiceCpu(config.redisUrl);
  const output = await runScript('bench/lib/ingest-load.ts', [JSON.stringify(full)]);
  const serverCpuMs = server.cpuMs() - cpuBefore;
  const { redisMs } = serviceCpuUsed(servicesBefore, await readServiceCpu(config.redisUrl));
  const { generatorCpuMs, ...run } = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as Omit<
    LoadRun,
    'requestsPerSecond' | 'serverCpuMsPerRequest' | 'redisCpuMsPerRequest' | 'generatorCpuMsPerRequest'
  > & { generatorCpuMs: number };
  return {
    ...run,
    generatorCpuMsPerRequest: generatorCpuMs / run.answeredIncludingWarmup,
    requestsPerSecond: run.ok / run.durationSeconds,
    serverCpuMsPerRequest: serverCpuMs / run.answeredIncludingWarmup,
    redisCpuMsPerRequest: redisMs / run.answeredIncludingWarmup,
  };
}

async function waitingJobs(redisUrl: string, prefix: string): Promise<number> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  const queue = new Queue(QUEUES.stripeEvents, { connection, prefix });
  try {
    return await queue.getWaitingCount();
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

/**
 * Benchmark 1: signed events at full speed against the real receiver and against a bare Fastify
 * route, alternating which goes first each round so a drift in machine load hits both alike.
 * Every request carries a fresh event id, so the receiver really enqueues each one.
 */
export async function runIngestBenchmark(context: RunContext, runPrefix: string): Promise<IngestResult> {
  const { config } = context;
  const prefix = `${runPrefix}-ingest`;
  const [barePort, receiverPort] = [await freePort(), await freePort()];
  const bareServer = await startBareFastify(context, 'bare-fastify', barePort);
  const receiver = await startReceiver(context, 'receiver-ingest', { port: receiverPort, prefix });
  try {
    const bare: LoadRun[] = [];
    const receiverRuns: LoadRun[] = [];
    for (let round = 1; round <= config.rounds; round += 1) {
      const runBare = async () => {
        bare.push(await load(context, bareServer, { url: `http://127.0.0.1:${barePort}`, mode: 'unique', idPrefix: `ingb${round}` }));
      };
      const runReceiver = async () => {
        const run = await load(context, receiver, { url: `http://127.0.0.1:${receiverPort}`, mode: 'unique', idPrefix: `ingr${round}` });
        run.enqueued = await waitingJobs(config.redisUrl, prefix);
        receiverRuns.push(run);
        // An empty queue for the next run: a queue grown by every earlier run would slow Redis a little each time.
        await deleteKeysWithPrefix(config.redisUrl, `${prefix}:`);
      };
      const steps = round % 2 === 1 ? [runBare, runReceiver] : [runReceiver, runBare];
      for (const step of steps) await step();
    }
    const receiverDuplicate = await load(context, receiver, { url: `http://127.0.0.1:${receiverPort}`, mode: 'fixed', idPrefix: 'ingdup' });
    receiverDuplicate.enqueued = await waitingJobs(config.redisUrl, prefix);
    await deleteKeysWithPrefix(config.redisUrl, `${prefix}:`);
    const receiverTracing = await withTracingReceiver(context, prefix, (server, port) =>
      load(context, server, { url: `http://127.0.0.1:${port}`, mode: 'unique', idPrefix: 'ingtrace' }),
    );
    return {
      connections: config.ingestConnections,
      seconds: config.ingestSeconds,
      bare,
      receiver: receiverRuns,
      receiverDuplicate,
      receiverTracing,
      tracingRatio: receiverTracing.requestsPerSecond / median(receiverRuns.map((run) => run.requestsPerSecond)),
      ratio: median(receiverRuns.map((run) => run.requestsPerSecond)) / median(bare.map((run) => run.requestsPerSecond)),
      cpuMsPerRequest: {
        receiver: median(receiverRuns.map((run) => run.serverCpuMsPerRequest)),
        bare: median(bare.map((run) => run.serverCpuMsPerRequest)),
      },
      redisCpuMsPerRequest: median(receiverRuns.map((run) => run.redisCpuMsPerRequest)),
      generatorCpuMsPerRequest: {
        receiver: median(receiverRuns.map((run) => run.generatorCpuMsPerRequest)),
        bare: median(bare.map((run) => run.generatorCpuMsPerRequest)),
      },
      receiverPeakRss: receiver.memory().peakRss,
      bareFastifyPeakRss: bareServer.memory().peakRss,
    };
  } finally {
    await Promise.allSettled([bareServer.stop(), receiver.stop()]);
    await deleteKeysWithPrefix(config.redisUrl, `${prefix}:`);
  }
}

/** A receiver with tracing on, exporting to a sink that answers 200 and drops what it gets; stopped after `use`. */
async function withTracingReceiver(
  context: RunContext,
  prefix: string,
  use: (server: RunningProcess, port: number) => Promise<LoadRun>,
): Promise<LoadRun & { spansExportedBytes: number }> {
  let bytes = 0;
  const sink = http.createServer((request, response) => {
    request.on('data', (chunk: Buffer) => (bytes += chunk.length));
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const port = await freePort();
  let receiver: RunningProcess | undefined;
  try {
    receiver = await startReceiver(context, 'receiver-ingest-tracing', {
      port,
      prefix: `${prefix}t`,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`, OTEL_SERVICE_NAME: 'bench-receiver' },
    });
    const run = await use(receiver, port);
    return { ...run, spansExportedBytes: bytes };
  } finally {
    await receiver?.stop();
    await new Promise((resolve) => sink.close(resolve));
    await deleteKeysWithPrefix(context.config.redisUrl, `${prefix}t:`);
  }
}
