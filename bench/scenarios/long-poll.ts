import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@ledger/testkit';
import { seedOrders, type BenchDatabase } from '../lib/bench-database.js';
import type { Latency } from './end-to-end.js';
import { percentile } from '../lib/stats.js';
import { startReceiver, type RunContext } from '../lib/system-processes.js';

/** One way of committing the status changes the waiters wait for. */
export interface LongPollRound {
  /** Committed one order per statement at this rate (updates/s), or all in one statement (`burst`). */
  mode: 'spread' | 'burst';
  rate?: number;
  /** The statement's commit acknowledged → the waiter's answer received, per waiter. */
  commitToAnswer: Latency;
  /** Waiters answered by their wait ending instead of by the change (a lost wake-up). */
  missed: number;
  /** Receiver CPU per answer (notification, read, response), ms. */
  receiverCpuMsPerAnswer: number;
}

export interface LongPollResult {
  waiters: number;
  /** Receiver RSS before the waiters connected, with all of them waiting, and its peak (VmHWM), bytes. */
  rssIdle: number;
  rssWaiting: number;
  peakRss: number;
  /** The receiver's PostgreSQL connections while they waited: the LISTEN one and Prisma's pool. */
  listenConnections: number;
  poolConnections: number;
  rounds: LongPollRound[];
}

const WAIT_SECONDS = 30;
const API_KEY = `bench_${randomBytes(24).toString('base64url')}`;

function latencyOf(values: number[]): Latency {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: values.reduce((max, value) => Math.max(max, value), -Infinity) };
}

/** A long-poll per order over its own connection; resolves with the answer's arrival time and status. */
function waitFor(port: number, agent: http.Agent, orderId: string): Promise<{ at: number; status: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      {
        host: '127.0.0.1',
        port,
        agent,
        path: `/orders/${orderId}?wait=${WAIT_SECONDS}&status=awaiting_payment`,
        headers: { authorization: `Bearer ${API_KEY}` },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          const at = performance.now();
          if (response.statusCode !== 200) return reject(new Error(`GET /orders/${orderId} answered ${response.statusCode}: ${body}`));
          resolve({ at, status: (JSON.parse(body) as { status: string }).status });
        });
      },
    );
    request.on('error', reject);
  });
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
}

/**
 * Long-poll status: `waiters` clients each wait on their own order (`GET /orders/:id?wait=30&status=…`)
 * against a real receiver process; the bench then commits the status changes and times each answer
 * from the commit. Two rounds: one order per statement at `rate`/s, then every order in one statement.
 * Also the receiver's memory with all of them waiting, and its PostgreSQL connections meanwhile.
 */
export async function runLongPollBenchmark(context: RunContext, db: BenchDatabase, prefix: string): Promise<LongPollResult> {
  const { longPollWaiters: waiters, longPollRate: rate } = context.config;
  const port = await freePort();
  const receiver = await startReceiver(context, 'receiver-long-poll', {
    port,
    prefix: `${prefix}-long-poll`,
    env: { ORDERS_API_KEYS: API_KEY },
  });
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    // Warm up the route (module loading, pool) before the idle memory is read.
    // Batch names long enough for the receiver's order id pattern (ord_ + 20 characters or more).
    const run = randomBytes(4).toString('hex');
    await seedOrders(db.pool, `longpoll_warm_${run}`, 1);
    for (let i = 0; i < 20; i += 1)
      await fetch(`http://127.0.0.1:${port}/orders/ord_longpoll_warm_${run}_0`, { headers: { authorization: `Bearer ${API_KEY}` } });
    await sleep(500);
    const rssIdle = receiver.memory().rss;

    let rssWaiting = 0;
    let listenConnections = 0;
    let poolConnections = 0;
    const rounds: LongPollRound[] = [];
    for (const mode of ['spread', 'burst'] as const) {
      const batch = `longpoll_${mode}_${run}`;
      await seedOrders(db.pool, batch, waiters);
      const ids = Array.from({ length: waiters }, (_, i) => `ord_${batch}_${i}`);
      const answers = Promise.all(ids.map((id) => waitFor(port, agent, id)));
      const allWaiting = async () => {
        const deadline = Date.now() + 60_000;
        while ((await metric(port, 'ledger_order_waiters')) !== waiters) {
          if (Date.now() > deadline) throw new Error(`${waiters} clients did not all get to wait within 60 s`);
          await sleep(50);
        }
      };
      // A client answered early (an error, a status already changed) ends the round at once.
      await Promise.race([allWaiting(), answers.then(() => Promise.reject(new Error('answered before any change')))]);
      if (mode === 'spread') {
        rssWaiting = receiver.memory().rss;
        const { rows } = await db.pool.query<{ name: string; n: number }>(
          `SELECT application_name AS name, count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'webhook-receiver%' GROUP BY 1`,
        );
        listenConnections = rows.find((row) => row.name === 'webhook-receiver-listener')?.n ?? 0;
        poolConnections = rows.find((row) => row.name === 'webhook-receiver')?.n ?? 0;
      }

      const cpuBefore = receiver.cpuMs();
      const committedAt = new Map<string, number>();
      if (mode === 'spread') {
        const started = performance.now();
        for (const [i, id] of ids.entries()) {
          const due = started + (i * 1000) / rate;
          if (due > performance.now()) await sleep(due - performance.now());
          await db.pool.query(`UPDATE orders SET status = 'processing' WHERE id = $1`, [id]);
          committedAt.set(id, performance.now());
        }
      } else {
        await db.pool.query(`UPDATE orders SET status = 'processing' WHERE id = ANY($1)`, [ids]);
        const at = performance.now();
        for (const id of ids) committedAt.set(id, at);
      }
      const results = await answers;
      const receiverCpuMs = receiver.cpuMs() - cpuBefore;
      rounds.push({
        mode,
        rate: mode === 'spread' ? rate : undefined,
        commitToAnswer: latencyOf(results.map((result, i) => result.at - committedAt.get(ids[i]!)!)),
        missed: results.filter((result) => result.status === 'awaiting_payment').length,
        receiverCpuMsPerAnswer: receiverCpuMs / waiters,
      });
    }
    return { waiters, rssIdle, rssWaiting, peakRss: receiver.memory().peakRss, listenConnections, poolConnections, rounds };
  } finally {
    agent.destroy();
    await receiver.stop('SIGTERM', 5_000);
  }
}
