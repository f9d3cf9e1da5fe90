/**
 * Load generator of the end-to-end benchmark, run as its own process: posts one signed
 * `payment_intent.succeeded` per seeded order on a fixed schedule (open loop: the i-th event is due
 * at start + i/rate whether or not earlier ones were answered, as Stripe's deliveries are), and
 * writes each event's due, sent and answered times to a JSON file.
 *
 * Not autocannon: its `overallRate` lets each connection send its per-second quota back to back and
 * then wait for the next second, so arrivals come in bursts and latency measures the burst.
 *
 *   node --import tsx bench/lib/fixed-rate-sender.ts '{"url":…,"batch":…,"rate":1000,…}'
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { sendAtFixedRate } from './open-loop.js';
import { BENCH_WEBHOOK_SECRET, benchOrder, paymentSucceededEvent, stripeSignature } from './stripe-events.js';

/** What the parent asks for. */
export interface FixedRateOptions {
  url: string;
  /**
   * A second receiver joining while traffic flows (scale-out): polled on `/readyz` from the start;
   * once it answers 200, every other event goes to it (as a load balancer adds a ready backend).
   */
  joinUrl?: string;
  /** Seeded batch whose orders 0 … rate × seconds − 1 are paid, in order. */
  batch: string;
  rate: number;
  seconds: number;
  /** Events sent before the measured window; the sender prints `measuring` as the first measured one goes. */
  warmupEvents: number;
  /** Keep-alive sockets at most; more concurrent requests wait in the agent (and the wait is measured). */
  sockets: number;
  outFile: string;
}

/** Per event, by order index; times in epoch milliseconds, status -1 for a transport error. */
export interface FixedRateRecord {
  dueAt: number[];
  sentAt: number[];
  answeredAt: number[];
  status: number[];
  /** 0: sent to `url`, 1: to `joinUrl`. */
  target: number[];
  /** When `joinUrl` first answered ready (epoch ms), if it did. */
  joinedAt?: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as FixedRateOptions;
const targets = [new URL(options.url), ...(options.joinUrl ? [new URL(options.joinUrl)] : [])];
const total = Math.round(options.rate * options.seconds);
const agent = new http.Agent({ keepAlive: true, maxSockets: options.sockets });
const now = () => performance.timeOrigin + performance.now();

const record: FixedRateRecord = {
  dueAt: new Array<number>(total).fill(NaN),
  sentAt: new Array<number>(total).fill(NaN),
  answeredAt: new Array<number>(total).fill(NaN),
  status: new Array<number>(total).fill(0),
  target: new Array<number>(total).fill(0),
};
let joined = false;
if (options.joinUrl) {
  const readyz = new URL('/readyz', options.joinUrl);
  const poll = async () => {
    while (!joined) {
      const ready = await fetch(readyz).then(
        (response) => response.ok,
        () => false,
      );
      if (ready) {
        joined = true;
        record.joinedAt = now();
      } else await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  void poll();
}
let answered = 0;
let finish: () => void = () => undefined;
const allAnswered = new Promise<void>((resolve) => (finish = resolve));

function settle(index: number, status: number): void {
  record.answeredAt[index] = now();
  record.status[index] = status;
  if (++answered === total) finish();
}

function send(index: number, dueAt: number): void {
  const to = joined && index % 2 === 1 ? 1 : 0;
  const target = targets[to]!;
  record.target[index] = to;
  const body = JSON.stringify(paymentSucceededEvent(benchOrder(options.batch, index)));
  const request = http.request(
    {
      agent,
      host: target.hostname,
      port: target.port,
      method: 'POST',
      path: '/webhooks/stripe',
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'stripe-signature': stripeSignature(body, BENCH_WEBHOOK_SECRET),
      },
      timeout: 10_000,
    },
    (response) => {
      response.resume();
      response.on('end', () => settle(index, response.statusCode ?? 0));
    },
  );
  request.on('timeout', () => request.destroy(new Error('timed out')));
  request.on('error', () => settle(index, -1));
  request.end(body);
  record.dueAt[index] = dueAt;
  record.sentAt[index] = now();
}

// performance.now() for the schedule; the record keeps epoch times.
const startTick = performance.now() + 50;
const start = performance.timeOrigin + startTick;
await sendAtFixedRate(total, options.rate, startTick, (index, dueAt) => {
  if (index === options.warmupEvents) process.stdout.write('measuring\n');
  send(index, performance.timeOrigin + dueAt);
});
await allAnswered;
joined = true;
agent.destroy();

writeFileSync(options.outFile, JSON.stringify(record));
// reduce, not Math.max(...): long runs hold more values than a call's arguments may.
const maxOf = (values: number[]) => values.reduce((max, value) => Math.max(max, value), -Infinity);
process.stdout.write(
  `${JSON.stringify({
    sent: total,
    ok: record.status.filter((status) => status >= 200 && status < 300).length,
    sendSeconds: (maxOf(record.sentAt) - start) / 1000,
    maxSendLagMs: maxOf(record.sentAt.map((sentAt, index) => sentAt - record.dueAt[index]!)),
  })}\n`,
);
