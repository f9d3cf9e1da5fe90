/**
 * Load generator of the spending benchmark, run as its own process: debits with a unique reference
 * each, spread round-robin over `accounts` accounts, either at a fixed rate (open loop: the i-th is
 * due at start + i/rate whether or not earlier ones were answered) or as fast as `clients`
 * concurrent clients go (closed loop). Through the receiver over HTTP, or straight to PostgreSQL
 * with `pg` (the baselines). Prints one JSON line: {@link DebitLoadSummary}.
 *
 *   node --import tsx bench/lib/debit-load.ts '{"target":"receiver",…}'
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { debitWithPg } from '../baselines/plain-pg-debit.js';
import { sendAtFixedRate } from './open-loop.js';
import { percentile } from './stats.js';

export interface DebitLoadOptions {
  target: 'receiver' | 'pg-statement' | 'pg-function';
  url: string;
  apiKey: string;
  databaseUrl: string;
  /** Accounts `<accountPrefix>_<0 … accounts − 1>`. */
  accountPrefix: string;
  accounts: number;
  amount: number;
  currency: string;
  /** Fixed rate (debits/s) or, when absent, closed loop with `clients`. */
  rate?: number;
  clients: number;
  seconds: number;
  warmupSeconds: number;
  /** Keep-alive sockets (receiver) or pool connections (pg). */
  connections: number;
}

export interface DebitLoadSummary {
  sent: number;
  /** Debits written (201, or a row written by the baseline) and everything else, by status. */
  created: number;
  others: Record<string, number>;
  /** Measured window (after the warm-up): debits answered per second, latency from due (or sent) time. */
  measured: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  maxSendLagMs: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as DebitLoadOptions;
const target = new URL(options.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
const pool =
  options.target === 'receiver'
    ? undefined
    : new pg.Pool({ connectionString: options.databaseUrl, max: options.connections, application_name: 'bench-debit-baseline' });
const tag = `${process.pid}-${Date.now()}`;

/** One debit; resolves with its status ('201', 'refused', 'error', …). */
function debit(index: number): Promise<string> {
  const accountId = `${options.accountPrefix}_${index % options.accounts}`;
  const reference = `bench-${tag}-${index}`;
  if (pool) {
    const sql = options.target === 'pg-statement' ? 'statement' : 'function';
    return debitWithPg(pool, sql, { accountId, amount: options.amount, currency: options.currency, reference, description: null }).then(
      (written) => (written ? '201' : 'refused'),
      () => 'error',
    );
  }
  const body = JSON.stringify({ amount: options.amount, currency: options.currency, reference });
  return new Promise((resolve) => {
    const request = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        method: 'POST',
        path: `/accounts/${accountId}/debits`,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${options.apiKey}`,
        },
        timeout: 10_000,
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(String(response.statusCode)));
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', () => resolve('error'));
    request.end(body);
  });
}

const statuses: string[] = [];
const latencies: number[] = [];
const answeredAt: number[] = [];
let maxSendLagMs = 0;
const start = performance.now() + 50;
const measureFrom = start + options.warmupSeconds * 1000;
const end = measureFrom + options.seconds * 1000;
const note = (index: number, from: number, status: string) => {
  const at = performance.now();
  statuses[index] = status;
  if (from >= measureFrom) {
    latencies.push(at - from);
    answeredAt.push(at);
  }
};

const pending: Promise<void>[] = [];
let next = 0;
if (options.rate !== undefined) {
  const rate = options.rate;
  const total = Math.round(rate * (options.warmupSeconds + options.seconds));
  await sendAtFixedRate(total, rate, start, (index, dueAt) => {
    maxSendLagMs = Math.max(maxSendLagMs, performance.now() - dueAt);
    pending.push(debit(index).then((status) => note(index, dueAt, status)));
  });
} else {
  const client = async () => {
    while (performance.now() < end) {
      const index = next++;
      const sentAt = performance.now();
      note(index, sentAt, await debit(index));
    }
  };
  while (performance.now() < start) await new Promise((resolve) => setTimeout(resolve, 5));
  pending.push(...Array.from({ length: options.clients }, client));
}
await Promise.all(pending);
agent.destroy();
await pool?.end();

const others: Record<string, number> = {};
for (const status of statuses) if (status !== '201') others[status] = (others[status] ?? 0) + 1;
const firstAnswer = answeredAt.reduce((min, value) => Math.min(min, value), Infinity);
const lastAnswer = answeredAt.reduce((max, value) => Math.max(max, value), -Infinity);
const summary: DebitLoadSummary = {
  sent: statuses.length,
  created: statuses.filter((status) => status === '201').length,
  others,
  measured: latencies.length,
  perSecond: options.rate === undefined ? latencies.length / options.seconds : (latencies.length - 1) / ((lastAnswer - firstAnswer) / 1000),
  p50: percentile(latencies, 50),
  p99: percentile(latencies, 99),
  max: latencies.reduce((max, value) => Math.max(max, value), -Infinity),
  maxSendLagMs,
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
