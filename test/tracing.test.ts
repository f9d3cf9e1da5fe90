import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeAll, startChild, waitUntil, type RunningProcess } from '@ledger/testkit';
import type { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { createOrderFixture, events, type OrderFixture } from './helpers/fixtures.js';
import { testQueue } from './helpers/queues.js';
import { ADMIN_TOKEN, WEBHOOK_SECRETS, signatureHeader } from './helpers/receiver.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// The receiver and a worker as real processes, exporting their spans over OTLP/HTTP (JSON) to a
// collector this test runs: one webhook must make one trace from the delivery to the commit.

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: OtlpValue }[];
  links?: { traceId: string; spanId: string }[];
}
interface ExportedSpan extends OtlpSpan {
  service: string;
}

/** A minimal OTLP/HTTP collector: keeps every span POSTed to /v1/traces. */
async function startCollector(): Promise<{ url: string; spans: ExportedSpan[]; server: Server }> {
  const spans: ExportedSpan[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method === 'POST' && request.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans?: { resource?: { attributes?: OtlpSpan['attributes'] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
        };
        for (const resourceSpans of body.resourceSpans ?? []) {
          const service =
            resourceSpans.resource?.attributes?.find((attribute) => attribute.key === 'service.name')?.value.stringValue ?? '';
          for (const scope of resourceSpans.scopeSpans ?? []) for (const span of scope.spans ?? []) spans.push({ ...span, service });
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes?.find((entry) => entry.key === key)?.value;
  if (!value) return undefined;
  if (value.arrayValue) return (value.arrayValue.values ?? []).map((item) => item.stringValue ?? item.intValue ?? item.boolValue);
  return value.stringValue ?? value.intValue ?? value.boolValue;
}

/** `service:name` of `span`, its parent, its parent's parent…, up to the trace's root. */
function parentChain(spans: ExportedSpan[], from: ExportedSpan | undefined): string[] {
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  const chain: string[] = [];
  for (let span = from; span; span = span.parentSpanId ? byId.get(span.parentSpanId) : undefined)
    chain.push(`${span.service}:${span.name}`);
  return chain;
}

let db: TestDatabase;
let prefix: string;
let queue: Queue | undefined;
let collector: Awaited<ReturnType<typeof startCollector>> | undefined;
const processes: RunningProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await closeAll('closing the tracing test', [
    ...processes.splice(0).map((running) => () => running.stop('SIGTERM')),
    () => queue?.close(),
    () =>
      collector
        ? new Promise<void>((resolve, reject) => collector?.server.close((error) => (error ? reject(error) : resolve())))
        : undefined,
    () => deleteKeysWithPrefix(prefix),
  ]);
  queue = undefined;
  collector = undefined;
});
afterAll(async () => {
  await db?.drop();
});

/** The receiver and one worker, with `otel` as their OpenTelemetry environment (empty: tracing off). */
async function startSystem(otel: Record<string, string>): Promise<{ receiver: RunningProcess; worker: RunningProcess; port: string }> {
  prefix = uniquePrefix();
  queue = testQueue(prefix);
  const env = {
    LOG_LEVEL: 'info',
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    RECONCILE_INTERVAL_SECONDS: '0',
    HOLD_EXPIRY_INTERVAL_SECONDS: '0',
    // Whatever the developer's shell exports, this test decides.
    OTEL_EXPORTER_OTLP_ENDPOINT: '',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
    OTEL_SDK_DISABLED: '',
    ...otel,
  };
  const receiver = startChild({
    script: 'apps/webhook-receiver/src/server.ts',
    env: { ...env, PORT: '0', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRETS.join(','), ADMIN_TOKEN },
  });
  processes.push(receiver);
  const worker = startChild({ script: 'apps/order-worker/src/main.ts', env: { ...env, WORKER_CONCURRENCY: '4' } });
  processes.push(worker);
  const port = /webhook receiver listening on http:\/\/[^:]+:(\d+)/.exec(await receiver.waitFor(/webhook receiver listening on /))?.[1];
  await worker.waitFor(/order worker started/);
  if (!port) throw new Error('the receiver did not say its port');
  return { receiver, worker, port };
}

/** Sends one signed event (by default the payment of `order`); returns its id. */
async function deliver(
  port: string,
  order: OrderFixture,
  stripeEvent: { id: string; data: { object: object } } = events.paymentIntent('succeeded', order),
): Promise<string> {
  const payload = JSON.stringify(stripeEvent);
  const signature = signatureHeader(payload);
  const { client_secret: clientSecret } = stripeEvent.data.object as { client_secret?: string };
  delivered.push(signature.split('v1=')[1]!, ...(clientSecret ? [clientSecret] : []));
  const response = await fetch(`http://127.0.0.1:${port}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    body: payload,
  });
  expect(response.status).toBe(200);
  return stripeEvent.id;
}
/** The signatures and client secrets of the deliveries sent: no span may carry them. */
const delivered: string[] = [];

/** The order reached `status` and the worker has said it applied the event. */
async function waitForCredit(order: OrderFixture, worker: RunningProcess, eventId: string, status = 'credited'): Promise<void> {
  await waitUntil(async () => (await db.prisma.order.findUnique({ where: { id: order.id } }))?.status === status, 20_000, status);
  await worker.waitFor(new RegExp(`"eventId":"${eventId}".*"msg":"event applied"`), 10_000);
}

/** The JSON lines of a process that mention `eventId`. */
function linesAbout(running: RunningProcess, eventId: string): Record<string, unknown>[] {
  return running.lines.filter((line) => line.includes(eventId)).map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('OpenTelemetry traces', () => {
  it('one webhook is one trace: the receiver request, its enqueue, the worker job and the group commit, with Prisma and ioredis spans', async () => {
    collector = await startCollector();
    const { receiver, worker, port } = await startSystem({
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      // Export within a fraction of a second instead of the default 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    expect(receiver.lines.some((line) => line.includes('tracing on'))).toBe(true);
    const order = await createOrderFixture(db.prisma);
    const eventId = await deliver(port, order);
    await waitForCredit(order, worker, eventId);

    const spans = collector.spans;
    const isCommit = (span: ExportedSpan) =>
      span.name === 'ledger.group_commit' && (attribute(span, 'stripe.event.ids') as unknown[] | undefined)?.includes(eventId) === true;
    await waitUntil(async () => spans.some(isCommit), 15_000, 'the group commit span');

    const request = spans.find((span) => span.name === 'POST /webhooks/stripe' && attribute(span, 'stripe.event.id') === eventId);
    expect(request?.service).toBe('webhook-receiver');
    const job = spans.find((span) => span.name === 'stripe-events process' && attribute(span, 'stripe.event.id') === eventId);
    expect(job?.service).toBe('order-worker');
    const commit = spans.find(isCommit);
    // One trace from the delivery to the commit.
    expect(job?.traceId).toBe(request?.traceId);
    expect(commit?.traceId).toBe(request?.traceId);
    expect(attribute(job!, 'ledger.order_id')).toBe(order.id);
    expect(attribute(job!, 'ledger.account_id')).toBe(order.accountId);

    // The commit's parent chain goes through the worker's job and the enqueue to the request.
    expect(parentChain(spans, commit)).toEqual([
      'order-worker:ledger.group_commit',
      'order-worker:stripe-events process',
      'webhook-receiver:stripe-events publish',
      'webhook-receiver:POST /webhooks/stripe',
    ]);

    // The libraries' own spans in the same trace: ioredis under the enqueue, pg under the commit.
    const trace = spans.filter((span) => span.traceId === request?.traceId);
    const publish = trace.find((span) => span.name === 'stripe-events publish');
    expect(trace.some((span) => span.parentSpanId === publish?.spanId && attribute(span, 'db.system.name') === 'redis')).toBe(true);
    // The statement itself goes through the Prisma client's pg pool (a named prepared statement): pg's span.
    expect(
      trace.some(
        (span) =>
          span.parentSpanId === commit?.spanId && [attribute(span, 'db.system'), attribute(span, 'db.system.name')].includes('postgresql'),
      ),
    ).toBe(true);
    expect(trace.some((span) => span.name === 'stripe.webhook.verify' && span.parentSpanId === request?.spanId)).toBe(true);

    // Spans are exported outside: no signature, webhook secret or client secret in any of them.
    const exported = JSON.stringify(spans);
    for (const secret of [...delivered, ...WEBHOOK_SECRETS]) expect(exported).not.toContain(secret);

    // The logs of this payment carry its ids and the trace id.
    const logged = [...linesAbout(receiver, eventId), ...linesAbout(worker, eventId)];
    expect(logged.map((line) => line.msg)).toEqual(expect.arrayContaining(['event queued', 'event applied']));
    for (const line of logged) {
      expect(line).toMatchObject({ eventId, orderId: order.id, accountId: order.accountId, traceId: request?.traceId });
    }
  });

  it("an operator's review resolution is one trace from the admin request to the worker's job; the warm-ups make none", async () => {
    collector = await startCollector();
    const { worker, port } = await startSystem({
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    // Paid 10 short: held for review.
    const order = await createOrderFixture(db.prisma);
    const eventId = await deliver(port, order, events.paymentIntent('succeeded', order, { amount: order.amount - 10 }));
    await waitUntil(
      async () => (await db.prisma.order.findUnique({ where: { id: order.id } }))?.status === 'needs_review',
      20_000,
      'review',
    );
    const response = await fetch(`http://127.0.0.1:${port}/admin/reviews/${order.id}/resolve`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ decision: 'dismiss', note: 'refunded the short payment', resolvedBy: 'ops' }),
    });
    expect(response.status).toBe(200);

    const spans = collector.spans;
    const isJob = (span: ExportedSpan) => span.name === 'reviews process' && attribute(span, 'ledger.order_id') === order.id;
    await waitUntil(async () => spans.some(isJob), 15_000, 'the review job span');
    const job = spans.find(isJob);
    // The request's span ends last (it waits for the job's answer): exported up to a batch later.
    const isRequest = (span: ExportedSpan) => span.name === 'POST /admin/reviews/:orderId/resolve' && span.traceId === job?.traceId;
    await waitUntil(async () => spans.some(isRequest), 15_000, 'the admin request span');
    expect(job?.service).toBe('order-worker');
    expect(attribute(job!, 'ledger.review_outcome')).toBe('resolved');
    expect(attribute(job!, 'ledger.account_id')).toBe(order.accountId);
    expect(parentChain(spans, job)).toEqual([
      'order-worker:reviews process',
      'webhook-receiver:reviews publish',
      'webhook-receiver:POST /admin/reviews/:orderId/resolve',
    ]);
    // The event that put it under review is a trace of its own, as before.
    expect(spans.some((span) => span.name === 'stripe-events process' && attribute(span, 'stripe.event.id') === eventId)).toBe(true);
    // Each process sent 1,000 warm-up deliveries or jobs before it was ready: no span of them.
    expect(JSON.stringify(spans)).not.toContain('warmup');
    expect(spans.filter((span) => span.name.includes('warm-up'))).toEqual([]);
    // The worker's line about the resolution names the order and the account, and the trace.
    const line = worker.lines
      .map((entry) => JSON.parse(entry) as Record<string, unknown>)
      .find((entry) => entry.msg === 'review resolution');
    expect(line).toMatchObject({ orderId: order.id, accountId: order.accountId, traceId: job?.traceId });
  });

  it('off by default: no trace field in the job data, no tracing line, and the logs still follow the payment', async () => {
    const { receiver, worker, port } = await startSystem({});
    const order = await createOrderFixture(db.prisma);
    const eventId = await deliver(port, order);
    await waitForCredit(order, worker, eventId);

    const job = await queue!.getJob(eventId);
    expect(job?.data).toMatchObject({ id: eventId });
    expect(job?.data).not.toHaveProperty('trace');
    expect([...receiver.lines, ...worker.lines].some((line) => line.includes('tracing on'))).toBe(false);

    const logged = [...linesAbout(receiver, eventId), ...linesAbout(worker, eventId)];
    expect(logged.map((line) => line.msg)).toEqual(expect.arrayContaining(['event queued', 'event applied']));
    for (const line of logged) {
      expect(line).toMatchObject({ eventId, orderId: order.id, accountId: order.accountId });
      expect(line).not.toHaveProperty('traceId');
    }

    // A refund names no order in its payload: the worker's line takes the order and account the
    // ledger found, so the grep by event id still leads to them.
    const refundId = await deliver(port, order, events.refund('charge.refunded', order, { id: `re_${eventId.slice(4)}`, amount: 300 }));
    await waitForCredit(order, worker, refundId, 'partially_refunded');
    expect(linesAbout(receiver, refundId).map((line) => line.msg)).toEqual(['event queued']);
    expect(linesAbout(worker, refundId)).toEqual([
      expect.objectContaining({ msg: 'event applied', eventId: refundId, orderId: order.id, accountId: order.accountId }),
    ]);
  });

  it('OTEL_SDK_DISABLED=true keeps it off even with an endpoint set', async () => {
    collector = await startCollector();
    const { receiver, worker, port } = await startSystem({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_SDK_DISABLED: 'true' });
    const order = await createOrderFixture(db.prisma);
    const eventId = await deliver(port, order);
    await waitForCredit(order, worker, eventId);
    expect((await queue!.getJob(eventId))?.data).not.toHaveProperty('trace');
    expect(receiver.lines.some((line) => line.includes('tracing on'))).toBe(false);
    expect(collector.spans).toEqual([]);
  });
});
