import { worstSlot, type CpuShare, type EndToEndResult, type Latency } from '../scenarios/end-to-end.js';
import type { IngestResult, LoadRun } from '../scenarios/ingest.js';
import type { LatencyCurveResult, SoakResult } from '../scenarios/latency-curve.js';
import type { LongPollResult } from '../scenarios/long-poll.js';
import type { ScaleOutResult } from '../scenarios/scale-out.js';
import type { MachineLoad } from './machine-load.js';
import { median } from './stats.js';
import type { PostgresCeilingResult } from '../scenarios/postgres-ceiling.js';
import type { SpendingResult, SpendingRun } from '../scenarios/spending.js';
import type { WorkerResult } from '../scenarios/worker-throughput.js';

/** Machine and load conditions of a run: every figure is only comparable within its own run. */
export interface MachineConditions {
  cpus: number;
  node: string;
  /** How the receiver and the worker ran: compiled JavaScript or TypeScript through tsx. */
  runtime: string;
  loadAverageBefore: number[];
  loadAverageAfter: number[];
  /** How busy the machine was during each stage (this run's own processes included). */
  stageLoad: Partial<
    Record<
      'ingest' | 'worker' | 'endToEnd' | 'endToEndFallback' | 'scaleOut' | 'curve' | 'soak' | 'longPoll' | 'postgresCeiling' | 'spending',
      MachineLoad
    >
  >;
}

/** Everything one run measured; written to bench/results.json. */
export interface BenchResults {
  startedAt: string;
  machine: MachineConditions;
  ingest?: IngestResult;
  worker?: WorkerResult;
  endToEnd?: EndToEndResult;
  /** The end-to-end run at a rate this machine sustains, when it could not keep up with the target rate. */
  endToEndFallback?: EndToEndResult;
  scaleOut?: ScaleOutResult;
  curve?: LatencyCurveResult;
  soak?: SoakResult;
  longPoll?: LongPollResult;
  postgresCeiling?: PostgresCeilingResult;
  spending?: SpendingResult;
  targets: TargetCheck[];
}

/** One target of the benchmark issues (9, 15), with the measured value it is checked against. */
export interface TargetCheck {
  target: string;
  measured: string;
  /** Undefined when the benchmark it needs was not run (`BENCH_ONLY`). */
  pass: boolean | undefined;
}

const MB = 1024 * 1024;
const int = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '∞');
const ms = (value: number) => (Number.isFinite(value) ? `${value < 10 ? value.toFixed(1) : Math.round(value)} ms` : '∞');
const ratio = (value: number) => `${value.toFixed(2)}×`;
const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;
const mbSigned = (bytes: number) => `${bytes >= 0 ? '+' : ''}${(bytes / MB).toFixed(1)} MB`;
const latency = (value: Latency) => `p50 ${ms(value.p50)}  p99 ${ms(value.p99)}`;

function loadSummary(runs: LoadRun[]): string {
  const of = (measure: (run: LoadRun) => number) => median(runs.map(measure));
  return `${int(of((run) => run.requestsPerSecond))} req/s  p50 ${ms(of((run) => run.latencyMs.p50))}  p99 ${ms(of((run) => run.latencyMs.p99))}`;
}

/** Checks the issue's targets against what was measured. */
export function checkTargets(results: Omit<BenchResults, 'targets'>): TargetCheck[] {
  const { ingest, worker, endToEnd, endToEndFallback } = results;
  const notRun = 'not run';
  const e2eRate = endToEnd ? `${int(endToEnd.rate)} events/s` : '1,000 events/s';
  const p99 = (run: EndToEndResult) => `${ms(run.creditVisible.p99)}${run.uncredited > 0 ? ` (${run.uncredited} uncredited)` : ''}`;
  const fallback = endToEndFallback
    ? [
        {
          target: `  same, at ${int(endToEndFallback.rate)} events/s (what this machine sustains; not the target)`,
          measured: p99(endToEndFallback),
          pass: endToEndFallback.creditVisible.p99 < 100 && endToEndFallback.non2xx === 0,
        },
      ]
    : [];
  const cpuPerEvent = endToEnd ? totalCpuMsPerEvent(endToEnd) : NaN;
  const { curve, soak, scaleOut } = results;
  const MB_LIMIT = 20 * MB;
  return [
    {
      target: `cold: credit visible p99 < 100 ms, first ${endToEnd?.coldSeconds ?? 10} s of ${e2eRate} to just-ready processes`,
      measured: endToEnd ? p99(endToEnd) : notRun,
      pass: endToEnd && endToEnd.creditVisible.p99 < 100 && endToEnd.non2xx === 0,
    },
    {
      target: `steady: credit visible p99 < 100 ms at ${e2eRate}, after the warm-up`,
      measured: endToEnd ? ms(endToEnd.steady.creditVisible.p99) : notRun,
      pass: endToEnd && endToEnd.steady.creditVisible.p99 < 100 && endToEnd.non2xx === 0,
    },
    ...fallback,
    {
      target: 'highest rate sustained with steady p99 < 100 ms ≥ 1,500 events/s',
      measured: curve ? `${int(curve.highestSustainedRate)} events/s` : notRun,
      pass: curve && curve.highestSustainedRate >= 1_500,
    },
    {
      target: `scale-out: a receiver joining under ${e2eRate}, credit p99 of its first second < 100 ms`,
      measured: scaleOut
        ? `${ms(scaleOut.joinerFirstSecond.creditVisible.p99)} (answers ${ms(scaleOut.joinerFirstSecond.webhookAnswer.p99)})`
        : notRun,
      pass: scaleOut && scaleOut.joinerFirstSecond.creditVisible.p99 < 100 && scaleOut.non2xx === 0,
    },
    {
      target: `soak at ${e2eRate}: worst 10 s credit p99 < 100 ms; RSS and Redis flat (< 20 MB growth)`,
      measured: soak
        ? `${ms(soak.worstWindowP99)}; receiver ${mbSigned(soak.growth.receiverRss)}, worker ${mbSigned(soak.growth.workerRss)}, Redis ${mbSigned(soak.growth.redisUsedMemory)}`
        : 'not run (--soak)',
      pass:
        soak &&
        soak.worstWindowP99 < 100 &&
        soak.non2xx === 0 &&
        soak.uncredited === 0 &&
        Math.max(soak.growth.receiverRss, soak.growth.workerRss, soak.growth.redisUsedMemory) < MB_LIMIT,
    },
    {
      target: `CPU per credited event ≤ 1.0 ms, all processes (receiver + worker + Redis + PostgreSQL) at ${e2eRate}`,
      measured: endToEnd ? `${cpuPerEvent.toFixed(2)} ms` : notRun,
      pass: endToEnd && cpuPerEvent <= 1.0,
    },
    {
      target: 'worker drain ≥ 4× the same worker with batching off (credits/s)',
      measured: worker ? ratio(worker.ratioTo.unbatched) : notRun,
      pass: worker && worker.ratioTo.unbatched >= 4,
    },
    {
      target: 'worker drain ≥ 0.8× plain pg, same batched SQL (credits/s)',
      measured: worker ? ratio(worker.ratioTo.plain) : notRun,
      pass: worker && worker.ratioTo.plain >= 0.8,
    },
    {
      target: 'receiver ingest ≥ 0.35× bare Fastify (req/s)',
      measured: ingest ? ratio(ingest.ratio) : notRun,
      pass: ingest && ingest.ratio >= 0.35,
    },
    {
      target: 'receiver peak RSS < 150 MB',
      measured: endToEnd ? mb(endToEnd.receiverPeakRss) : notRun,
      pass: endToEnd && endToEnd.receiverPeakRss < 150 * MB,
    },
    {
      target: 'worker peak RSS < 200 MB',
      measured: endToEnd ? mb(endToEnd.workerPeakRss) : notRun,
      pass: endToEnd && endToEnd.workerPeakRss < 200 * MB,
    },
    {
      target: `Redis memory at steady state < 256 MB at ${e2eRate}`,
      measured: endToEnd ? `${mb(endToEnd.redisPeakBytes)} at the peak (${int(endToEnd.completedJobsKept)} completed jobs kept)` : notRun,
      pass: endToEnd && endToEnd.redisPeakBytes < 256 * MB,
    },
  ];
}

/** CPU of every process per credited event: what one credit costs the machine. */
function totalCpuMsPerEvent(run: EndToEndResult): number {
  return run.receiverCpu.msPerEvent + run.workerCpu.msPerEvent + run.redisCpu.msPerEvent + run.postgresCpu.msPerEvent;
}

function table(rows: string[][]): string {
  const widths = rows.reduce<number[]>((acc, row) => row.map((cell, index) => Math.max(acc[index] ?? 0, cell.length)), []);
  return rows
    .map((row) =>
      row
        .map((cell, index) => cell.padEnd(widths[index] ?? 0))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

/** Throughput and latency of each benchmark next to its baseline. */
function measurementRows(results: BenchResults): string[][] {
  const { ingest, worker, endToEnd, endToEndFallback } = results;
  const rows: string[][] = [['benchmark', 'measured', 'baseline (same run)', 'ratio']];
  if (ingest) {
    rows.push([
      `1 ingest, ${ingest.connections} connections, ${ingest.seconds} s × ${ingest.receiver.length}`,
      `receiver ${loadSummary(ingest.receiver)}`,
      `bare Fastify ${loadSummary(ingest.bare)}`,
      ratio(ingest.ratio),
    ]);
    rows.push(['  same body again (duplicate path)', `receiver ${loadSummary([ingest.receiverDuplicate])}`, '', '']);
    rows.push([
      '  tracing on (OTLP/HTTP to a sink)',
      `receiver ${loadSummary([ingest.receiverTracing])}`,
      `${(ingest.receiverTracing.spansExportedBytes / 1e6).toFixed(1)} MB of spans exported; vs tracing off`,
      ratio(ingest.tracingRatio),
    ]);
    rows.push(['', `peak RSS receiver ${mb(ingest.receiverPeakRss)}`, `bare Fastify ${mb(ingest.bareFastifyPeakRss)}`, '']);
  }
  if (worker) {
    rows.push([
      `2 worker drain, ${int(worker.events)} events, concurrency ${worker.concurrency}, batches of ${worker.batchSize} (${worker.batchWaitMs} ms)`,
      `real worker ${int(worker.creditsPerSecond.real)} credits/s`,
      `same worker, batching off ${int(worker.creditsPerSecond.unbatched)} credits/s`,
      ratio(worker.ratioTo.unbatched),
    ]);
    rows.push(['', '', `plain pg, same batched SQL ${int(worker.creditsPerSecond.plain)} credits/s`, ratio(worker.ratioTo.plain)]);
    rows.push([
      '',
      `peak RSS real worker ${mb(worker.peakRss.real)}`,
      `unbatched ${mb(worker.peakRss.unbatched)}, plain pg ${mb(worker.peakRss.plain)}`,
      '',
    ]);
  }
  const endToEndRows = (run: EndToEndResult, label: string) => {
    rows.push([
      `${label} end to end, ${int(run.rate)} events/s, cold: first ${run.coldSeconds} s`,
      `credit visible ${latency(run.creditVisible)}  max ${ms(run.creditVisible.max)}${run.uncredited > 0 ? `  ${int(run.uncredited)} never credited` : ''}`,
      `sent ${int(run.achievedRate)}/s (max lag ${ms(run.maxSendLagMs)}), credited ${int(run.creditsPerSecond)}/s`,
      '',
    ]);
    rows.push(['', `ledger insert ${latency(run.ledgerInsert)}`, `webhook 200 ${latency(run.webhookAnswer)}`, '']);
    rows.push([
      `  steady: after the warm-up, ${run.seconds} s`,
      `credit visible ${latency(run.steady.creditVisible)}  max ${ms(run.steady.creditVisible.max)}`,
      `webhook 200 ${latency(run.steady.webhookAnswer)}`,
      '',
    ]);
    const worst = worstSlot(run.timeline);
    if (worst)
      rows.push([
        '  worst 100 ms (by credit p99)',
        `due at ${(worst.fromMs / 1000).toFixed(1)} s: ${worst.due} due, ${worst.answered} answered, ${worst.credited} credited`,
        `credit ${latency(worst.credit)}, answer p99 ${ms(worst.answer.p99)}`,
        '',
      ]);
    rows.push([
      '',
      `peak RSS receiver ${mb(run.receiverPeakRss)}, worker ${mb(run.workerPeakRss)}`,
      `RSS once ready: receiver ${mb(run.receiverReadyRss)}, worker ${mb(run.workerReadyRss)}`,
      '',
    ]);
    rows.push([
      '',
      `Redis +${mb(run.redisPeakBytes)} at the peak, +${mb(run.redisEndBytes)} at the end`,
      `${int(run.completedJobsKept)} completed jobs kept (${run.completedJobsKept > 0 ? int(run.redisEndBytes / run.completedJobsKept) : '—'} bytes each)`,
      '',
    ]);
  };
  if (endToEnd) endToEndRows(endToEnd, '3+4');
  if (endToEndFallback) endToEndRows(endToEndFallback, '3b');
  const { scaleOut, curve, soak } = results;
  if (scaleOut) {
    rows.push([
      `3c scale-out at ${int(scaleOut.rate)} events/s`,
      `joining receiver's first second: credit ${latency(scaleOut.joinerFirstSecond.creditVisible)} (${int(scaleOut.joinerFirstSecond.events)} events)`,
      `first receiver meanwhile: credit ${latency(scaleOut.firstReceiverSameSecond.creditVisible)}`,
      '',
    ]);
    rows.push([
      '',
      `its answers p99 ${ms(scaleOut.joinerFirstSecond.webhookAnswer.p99)}; start-up to ready ${ms(scaleOut.startUpMs)}`,
      `whole run: credit ${latency(scaleOut.all.creditVisible)}`,
      '',
    ]);
  }
  if (curve) {
    for (const point of curve.points) {
      rows.push([
        point === curve.points[0] ? `3d latency curve, warm, ${curve.seconds} s per rate` : '',
        `${int(point.rate)}/s: credit p50 ${ms(point.creditVisible.p50)}  p99 ${ms(point.creditVisible.p99)}  max ${ms(point.creditVisible.max)}`,
        `CPU ${point.cpuMsPerEvent.total.toFixed(2)} ms/event, credited ${int(point.creditsPerSecond)}/s`,
        point.sustained ? 'sustained' : 'not sustained',
      ]);
    }
    rows.push(['', `highest rate sustained with p99 < 100 ms: ${int(curve.highestSustainedRate)} events/s`, '', '']);
  }
  if (soak) {
    rows.push([
      `3e soak, ${int(soak.rate)} events/s × ${soak.seconds} s`,
      `credit p99 per 10 s: ${soak.windows.map((window) => ms(window.creditVisible.p99)).join(', ')}`,
      `RSS receiver ${soak.windows.map((window) => mb(window.receiverRss)).join(' → ')}`,
      '',
    ]);
    rows.push([
      '',
      `worker ${soak.windows.map((window) => mb(window.workerRss)).join(' → ')}`,
      `Redis ${soak.windows.map((window) => mb(window.redisUsedMemory)).join(' → ')}`,
      '',
    ]);
  }
  if (results.postgresCeiling) {
    const { batchSize, levels, bytesPerCredit } = results.postgresCeiling;
    for (const level of levels) {
      rows.push([
        level === levels[0] ? `6 PostgreSQL ceiling (the credit statement alone, batches of ${batchSize})` : '',
        `${level.connections} connection${level.connections === 1 ? '' : 's'}: ${int(level.creditsPerSecond)} credits/s`,
        `PostgreSQL ${level.postgresCpuMsPerCredit.toFixed(3)} ms CPU per credit`,
        '',
      ]);
    }
    rows.push([
      '',
      `bytes per credited event: ledger ${int(bytesPerCredit.ledger)}, inbox ${int(bytesPerCredit.inbox)}`,
      `orders ${int(bytesPerCredit.orders)} (one per credit)`,
      '',
    ]);
  }
  if (results.longPoll) {
    const { waiters, rounds, rssIdle, rssWaiting, peakRss, listenConnections, poolConnections } = results.longPoll;
    for (const round of rounds) {
      rows.push([
        round.mode === 'spread'
          ? `5 long-poll, ${int(waiters)} waiting, changes at ${int(round.rate ?? 0)}/s`
          : `  same, all ${int(waiters)} changed in one commit`,
        `commit → answer ${latency(round.commitToAnswer)}${round.missed > 0 ? `  ${int(round.missed)} missed` : ''}`,
        `receiver ${round.receiverCpuMsPerAnswer.toFixed(2)} ms CPU per answer`,
        '',
      ]);
    }
    rows.push([
      '',
      `receiver RSS ${mb(rssIdle)} idle, ${mb(rssWaiting)} waiting (peak ${mb(peakRss)})`,
      `PostgreSQL: ${listenConnections} LISTEN + ${poolConnections} pool connections`,
      '',
    ]);
  }
  if (results.spending) spendingRows(rows, results.spending);
  return rows;
}

/** Spending: per shape and load, the receiver next to plain pg (the one-statement CTE: the ratio) and ledger_debit over pg. */
function spendingRows(rows: string[][], spending: SpendingResult): void {
  const describe = (run: SpendingRun) => {
    const { summary } = run;
    const others = Object.entries(summary.others)
      .map(([status, count]) => `${int(count)}× ${status}`)
      .join(', ');
    return `${int(summary.perSecond)} debits/s  p50 ${ms(summary.p50)}  p99 ${ms(summary.p99)}${others ? `  (${others})` : ''}`;
  };
  const find = (shape: SpendingRun['shape'], rate: number | undefined, target: SpendingRun['target']) =>
    spending.runs.find((run) => run.shape === shape && run.rate === rate && run.target === target);
  for (const shape of ['hot', 'many'] as const) {
    for (const rate of [spending.rate, undefined]) {
      const receiver = find(shape, rate, 'receiver');
      const plain = find(shape, rate, 'pg-statement');
      const fn = find(shape, rate, 'pg-function');
      if (!receiver || !plain) continue;
      const label =
        rate === undefined
          ? `  full speed, ${receiver.clients} clients × ${spending.maxSeconds} s`
          : `7 spending, ${int(receiver.accounts)} ${shape} accounts, ${int(rate)} debits/s × ${spending.seconds} s`;
      rows.push([
        label,
        `receiver ${describe(receiver)}`,
        `plain pg, one CTE statement ${describe(plain)}`,
        rate === undefined
          ? ratio(receiver.summary.perSecond / plain.summary.perSecond)
          : `p99 ${ratio(receiver.summary.p99 / plain.summary.p99)}`,
      ]);
      if (fn) rows.push(['', '', `pg, SELECT ledger_debit(…) ${describe(fn)}`, '']);
    }
  }
}

/**
 * CPU milliseconds each process spends per event. On two shared cores the throughput ratios follow
 * these, and they say where to cut; Redis's counter includes its other clients.
 */
function cpuRows(results: BenchResults): string[][] {
  const { ingest, worker, endToEnd, endToEndFallback } = results;
  const value = (ms?: number) => (ms === undefined ? '' : ms.toFixed(2));
  const rows: string[][] = [['CPU ms per event', 'app process', 'Redis', 'PostgreSQL', 'load generator']];
  if (ingest) {
    rows.push([
      '1 receiver',
      value(ingest.cpuMsPerRequest.receiver),
      value(ingest.redisCpuMsPerRequest),
      '',
      value(ingest.generatorCpuMsPerRequest.receiver),
    ]);
    rows.push(['  bare Fastify', value(ingest.cpuMsPerRequest.bare), '', '', value(ingest.generatorCpuMsPerRequest.bare)]);
    rows.push([
      '  receiver, tracing on',
      value(ingest.receiverTracing.serverCpuMsPerRequest),
      value(ingest.receiverTracing.redisCpuMsPerRequest),
      '',
      value(ingest.receiverTracing.generatorCpuMsPerRequest),
    ]);
  }
  if (worker) {
    const labels = { real: '2 real worker', unbatched: '  same worker, batching off', plain: '  plain pg, same batched SQL' } as const;
    for (const variant of ['real', 'unbatched', 'plain'] as const) {
      rows.push([
        labels[variant],
        value(worker.cpuMsPerCredit[variant]),
        value(worker.redisCpuMsPerCredit[variant]),
        value(worker.postgresCpuMsPerCredit[variant]),
      ]);
    }
  }
  const share = (cpu: CpuShare) => `${cpu.msPerEvent.toFixed(2)} (${Math.round(cpu.coreShare * 100)}%)`;
  for (const [label, run] of [
    ['3', endToEnd],
    ['3b', endToEndFallback],
  ] as const) {
    if (!run) continue;
    rows.push([
      `${label} at ${int(run.rate)}/s: receiver + worker (share of a core)`,
      `${share(run.receiverCpu)} + ${share(run.workerCpu)}`,
      share(run.redisCpu),
      share(run.postgresCpu),
    ]);
    rows.push([`  all processes per credited event`, totalCpuMsPerEvent(run).toFixed(2), '', '']);
  }
  return rows;
}

/** The printed report: measurements with their baselines, CPU per event, machine load, then each target with PASS / MISS. */
export function formatReport(results: BenchResults): string {
  const { machine } = results;
  const lines = [
    `Benchmarks — ${machine.cpus} CPUs, node ${machine.node}, receiver and worker ${machine.runtime}, load average ${machine.loadAverageBefore.map((n) => n.toFixed(2)).join(' ')} before, ${machine.loadAverageAfter.map((n) => n.toFixed(2)).join(' ')} after`,
    '',
    table(measurementRows(results)),
    '',
    table(cpuRows(results)),
    '',
  ];
  const stageNames = {
    ingest: '1',
    worker: '2',
    endToEnd: '3',
    endToEndFallback: '3b',
    scaleOut: '3c',
    curve: '3d',
    soak: '3e',
    longPoll: '5',
    postgresCeiling: '6',
    spending: '7',
  } as const;
  const loads = Object.entries(machine.stageLoad).map(([stage, load]) => {
    const { min, max } = load.loadAverage;
    return `${stageNames[stage as keyof typeof stageNames]}: load ${min.toFixed(1)}–${max.toFixed(1)}, CPU ${Math.round(load.cpuBusy * 100)}% busy`;
  });
  if (loads.length > 0)
    lines.push(`machine during each benchmark (${machine.cpus} CPUs; this run's processes included) — ${loads.join('; ')}`, '');
  const verdict = (pass: boolean | undefined) => (pass === undefined ? '—' : pass ? 'PASS' : 'MISS');
  lines.push(table([['target', 'measured', ''], ...results.targets.map((check) => [check.target, check.measured, verdict(check.pass)])]));
  return lines.join('\n');
}
