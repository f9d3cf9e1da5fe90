import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { closeAll, freePorts, startChild, waitUntil, type RunningProcess } from '@ledger/testkit';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { processStripeEvent } from '../apps/order-worker/src/jobs/stripe-event.js';
import { createWorkerMetrics } from '../apps/order-worker/src/metrics.js';
import { resolveReview } from '../apps/order-worker/src/operations/review.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { createOrderFixture, events, jobOf } from './helpers/fixtures.js';
import { deleteKeysWithPrefix, uniquePrefix } from './helpers/redis.js';

// The alerts, their promtool tests and the dashboard are only worth something if every metric they
// read is one the processes really serve and every runbook link lands on a README heading.

const ALERTS = 'ops/prometheus/alerts.yml';
const ALERT_TESTS = 'ops/prometheus/alerts.test.yml';
const DASHBOARD = 'ops/grafana/dashboard.json';
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template.
const DATASOURCE_VARIABLE = '${datasource}';

interface AlertRule {
  alert: string;
  expr: string;
  labels?: { severity?: string };
  annotations?: { summary?: string; runbook?: string };
}
interface AlertTests {
  tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
}
interface Panel {
  id: number;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource: { type: string; uid: string };
  targets: { refId: string; expr: string; datasource: { uid: string } }[];
}

const alertRules = (): AlertRule[] =>
  (parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((group) => group.rules);
const dashboard = () => JSON.parse(readFileSync(DASHBOARD, 'utf8'));

/** promtool's output, or a failure that says what to install or what promtool said. */
async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('promtool', args);
    return stdout;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('promtool is not installed: apt-get install -y prometheus (.ci/run installs it when missing)');
    }
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${stdout ?? ''}${stderr ?? ''}`);
  }
}

/** The metric names an expression reads (Prometheus' own `up` aside). */
const metricsIn = (expr: string) => [...expr.matchAll(/\bledger_[a-z0-9_]+\b/g)].map((match) => match[0]);

/** GitHub's anchor of a Markdown heading. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');

describe('Prometheus alerts', () => {
  it('pass promtool check rules and its unit tests', async () => {
    expect(await promtool('check', 'rules', ALERTS)).toMatch(/SUCCESS: \d+ rules found/);
    expect(await promtool('test', 'rules', ALERT_TESTS)).toMatch(/SUCCESS/);
    expect(await promtool('check', 'config', '--syntax-only', 'ops/prometheus/prometheus.yml')).toMatch(/SUCCESS/);
  });

  it('each have a severity, a summary, a runbook heading in the README, and a test firing and one not firing', () => {
    const rules = alertRules();
    expect(rules.length).toBeGreaterThan(10);
    const headings = new Set(
      readFileSync('README.md', 'utf8')
        .split('\n')
        .filter((line) => /^#{1,6} /.test(line))
        .map((line) => anchorOf(line.replace(/^#+ /, ''))),
    );
    const tests = (parse(readFileSync(ALERT_TESTS, 'utf8')) as AlertTests).tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const rule of rules) {
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.runbook, rule.alert).toBe(`README.md#${rule.alert.toLowerCase()}`);
      expect(headings.has(rule.alert.toLowerCase()), `README heading ${rule.alert}`).toBe(true);
      const own = tests.filter((test) => test.alertname === rule.alert);
      expect(
        own.some((test) => test.exp_alerts.length === 0),
        `${rule.alert} tested not firing`,
      ).toBe(true);
      expect(
        own.some((test) => test.exp_alerts.length > 0),
        `${rule.alert} tested firing`,
      ).toBe(true);
    }
  });
});

describe('the Grafana dashboard', () => {
  it('is a dashboard model on a templated Prometheus data source, with unique panel ids and no overlapping panels', () => {
    const model = dashboard();
    expect(model).toMatchObject({ title: expect.any(String), uid: expect.any(String), schemaVersion: expect.any(Number) });
    expect(model.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }));
    const panels: Panel[] = model.panels;
    expect(panels.length).toBeGreaterThan(8);
    expect(new Set(panels.map((panel) => panel.id)).size).toBe(panels.length);
    for (const panel of panels) {
      const { x, y, w, h } = panel.gridPos;
      expect([x, y, w, h].every(Number.isInteger) && x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, panel.title).toBe(true);
      expect(panel.datasource.uid, panel.title).toBe(DATASOURCE_VARIABLE);
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      expect(new Set(panel.targets.map((target) => target.refId)).size, panel.title).toBe(panel.targets.length);
      for (const target of panel.targets) {
        expect(target.datasource.uid, panel.title).toBe(DATASOURCE_VARIABLE);
        expect(metricsIn(target.expr).length > 0 || /^up\{/.test(target.expr), target.expr).toBe(true);
      }
    }
    for (const [i, a] of panels.entries()) {
      for (const b of panels.slice(i + 1)) {
        const apart =
          a.gridPos.x + a.gridPos.w <= b.gridPos.x ||
          b.gridPos.x + b.gridPos.w <= a.gridPos.x ||
          a.gridPos.y + a.gridPos.h <= b.gridPos.y ||
          b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        expect(apart, `${a.title} overlaps ${b.title}`).toBe(true);
      }
    }
  });
});

describe('a started receiver and worker', () => {
  let db: TestDatabase;
  const prefix = uniquePrefix();
  const running: RunningProcess[] = [];
  let receiverMetrics: string;
  let workerMetrics: string;
  let scrapeWorker: () => Promise<string>;

  const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

  beforeAll(async () => {
    db = await createTestDatabase();
    const [receiverPort, workerPort] = (await freePorts(2)) as [number, number];
    const env = {
      LOG_LEVEL: 'info',
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
      RECONCILE_INTERVAL_SECONDS: '0',
    };
    running.push(
      startChild({ script: 'apps/webhook-receiver/src/server.ts', env: { ...env, PORT: String(receiverPort) } }),
      startChild({ script: 'apps/order-worker/src/main.ts', env: { ...env, WORKER_METRICS_PORT: String(workerPort) } }),
    );
    await waitUntil(
      async () => (await fetch(`http://127.0.0.1:${receiverPort}/readyz`).catch(() => undefined))?.status === 200,
      30_000,
      'the receiver to be ready',
    );
    await running[1]!.waitFor(/order worker started/, 30_000);
    receiverMetrics = await scrape(receiverPort);
    workerMetrics = await scrape(workerPort);
    scrapeWorker = () => scrape(workerPort);
  }, 90_000);
  afterAll(async () => {
    await closeAll('after the observability test', [
      ...running.map((process) => () => process.stop('SIGKILL')),
      () => deleteKeysWithPrefix(prefix),
      () => db?.drop(),
    ]);
  });

  it('serve every metric the alerts and the dashboard read', () => {
    const types = new Map(
      [...`${receiverMetrics}\n${workerMetrics}`.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1]!, match[2]!]),
    );
    // A histogram is served as its _bucket, _sum and _count series.
    const served = (name: string) => {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      return types.has(name) || (base !== name && types.get(base) === 'histogram');
    };
    const read = [
      ...alertRules().map((rule) => rule.expr),
      ...dashboard().panels.flatMap((panel: Panel) => panel.targets.map((target) => target.expr)),
    ];
    const names = [...new Set(read.flatMap(metricsIn))];
    expect(names.length).toBeGreaterThan(20);
    expect(names.filter((name) => !served(name))).toEqual([]);
    for (const text of [receiverMetrics, workerMetrics]) {
      expect(text).toMatch(/^ledger_ready 1$/m);
      expect(text).toMatch(/^ledger_dependency_up\{dependency="postgres"\} 1$/m);
      expect(text).toMatch(/^ledger_dependency_up\{dependency="redis"\} 1$/m);
    }
  });

  it('report held facts and the order under review until an operator resolves it', async () => {
    const gauge = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    const before = await scrapeWorker();
    expect([gauge(before, 'ledger_held_facts'), gauge(before, 'ledger_orders_under_review')]).toEqual([0, 0]);
    expect(gauge(before, 'ledger_held_facts_oldest_age_seconds')).toBe(0);

    // Paid 10 less than asked: the payment is held and the order is under review.
    const order = await createOrderFixture(db.prisma, { amount: 1_000 });
    const deps = { prisma: db.prisma, metrics: createWorkerMetrics(new Registry()) };
    await processStripeEvent(deps, jobOf(events.paymentIntent('succeeded', order, { amount: 990 })), pino({ level: 'silent' }));
    const held = await scrapeWorker();
    expect([gauge(held, 'ledger_held_facts'), gauge(held, 'ledger_orders_under_review')]).toEqual([1, 1]);
    expect(gauge(held, 'ledger_held_facts_oldest_age_seconds')).toBeGreaterThan(0);
    expect(gauge(held, 'ledger_orders_under_review_oldest_age_seconds')).toBeGreaterThan(0);

    const resolved = await resolveReview(db.prisma, {
      orderId: order.id,
      decision: 'dismiss',
      note: 'refunded at Stripe',
      resolvedBy: 'test',
    });
    expect(resolved.outcome).toBe('resolved');
    const after = await scrapeWorker();
    expect([gauge(after, 'ledger_held_facts'), gauge(after, 'ledger_orders_under_review')]).toEqual([0, 0]);
    expect(gauge(after, 'ledger_orders_under_review_oldest_age_seconds')).toBe(0);
  });
});
