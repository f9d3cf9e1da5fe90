/**
 * Where a child's CPU time went, from a V8 `.cpuprofile` (`BENCH_CPU_PROF=receiver,worker`):
 * busy time by component (the innermost frame on the stack that belongs to a known library or app
 * file: a socket write made for BullMQ counts as BullMQ), then self time by package or file, then
 * the functions with the most self and total time. Percentages are of busy (non-idle) time.
 *
 *   npx tsx bench/lib/profile-summary.ts bench/profiles/<process>-<time>/CPU.….0.001.cpuprofile [top=25] [from=0] [to=∞]
 *
 * `from`/`to` (seconds since the profile began) keep only the samples taken in that window: the
 * first seconds of a process handed traffic at once are where a cold start shows. A timeline of
 * busy time per 500 ms comes first, to find that window.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Components of this project's processes, by the file a frame comes from; first match wins. */
const COMPONENTS: [name: string, url: RegExp][] = [
  ['logging (pino)', /node_modules\/(pino|sonic-boom|@pinojs|pino-std-serializers|quick-format-unescaped)\//],
  [
    'queue (BullMQ, ioredis)',
    /node_modules\/(bullmq|ioredis|@ioredis|msgpackr|denque|cluster-key-slot)\/|webhook-receiver\/src\/enqueue\.ts|shared\/src\/timeout\.ts/,
  ],
  ['Prisma (client, query compiler, adapter)', /node_modules\/(@prisma|prisma)\/|^wasm:/],
  ['pg driver', /node_modules\/(pg|pg-protocol|pg-pool|pg-types|postgres-[a-z]+)\//],
  ['Stripe SDK (signature)', /node_modules\/stripe\//],
  ['zod (event parsing)', /node_modules\/zod\/|order-worker\/src\/event-facts\.ts/],
  ['job payload (jobs.ts)', /shared\/src\/jobs\.ts/],
  ['metrics (prom-client)', /node_modules\/prom-client\//],
  [
    'Fastify',
    /node_modules\/(fastify|find-my-way|avvio|@fastify|fast-json-stringify|toad-cache|secure-json-parse|fast-querystring|light-my-request)\//,
  ],
  ['start-up (tsx, module loading)', /node_modules\/(tsx|esbuild)\//],
  ['app code', /\/(apps|packages|bench)\//],
];

/** `fastify`, `@prisma/client`, `packages/ledger/src/payments.ts`, `node:internal`… */
function areaOf(url: string, functionName: string): string {
  // V8's own entries ("(garbage collector)", "(idle)", "(program)") and builtins have no URL.
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const nodeModule = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nodeModule?.[1]) return nodeModule[1];
  if (url.startsWith('node:')) return 'node:internal';
  const own = /\/((?:apps|packages|bench)\/.+)$/.exec(url);
  return own?.[1] ?? url;
}

function functionKey(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anonymous)'} ${areaOf(url, functionName)}:${lineNumber + 1}`;
}

const [file, topArg, fromArg, toArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: tsx bench/lib/profile-summary.ts <file.cpuprofile> [top] [from seconds] [to seconds]\n');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const fromMicros = Number(fromArg ?? 0) * 1e6;
const toMicros = toArg === undefined ? Infinity : Number(toArg) * 1e6;
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parentOf = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);

/** The frames of a sample's stack, innermost first. */
function* stackOf(id: number): Generator<ProfileNode> {
  for (let current: number | undefined = id; current !== undefined; current = parentOf.get(current)) {
    const node = byId.get(current);
    if (!node) return;
    yield node;
  }
}

function componentOf(leaf: ProfileNode): string {
  const name = leaf.callFrame.functionName;
  if (!leaf.callFrame.url && name.startsWith('(') && name !== '(anonymous)') return name;
  for (const frame of stackOf(leaf.id)) {
    // Compiling the app's own modules at start-up is start-up, whoever imports them.
    if (frame.callFrame.functionName === 'compileSourceTextModule') return 'start-up (tsx, module loading)';
    const component = COMPONENTS.find(([, url]) => url.test(frame.callFrame.url));
    if (component) return component[0];
  }
  return 'Node runtime (http, net, timers)';
}

const selfMicros = new Map<number, number>();
/** Busy microseconds per 500 ms since the profile began. */
const timeline: number[] = [];
let sampledAt = 0;
for (const [index, id] of profile.samples.entries()) {
  const delta = profile.timeDeltas[index] ?? 0;
  sampledAt += delta;
  if (byId.get(id)?.callFrame.functionName !== '(idle)') {
    const slot = Math.floor(sampledAt / 500_000);
    timeline[slot] = (timeline[slot] ?? 0) + delta;
  }
  if (sampledAt < fromMicros || sampledAt >= toMicros) continue;
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + delta);
}
process.stdout.write(
  `busy ms per 500 ms: ${Array.from(timeline, (micros, slot) => `${slot / 2}s ${Math.round((micros ?? 0) / 1000)}`).join(' · ')}\n`,
);

const byComponent = new Map<string, number>();
const selfByArea = new Map<string, number>();
const selfByFunction = new Map<string, number>();
const totalByFunction = new Map<string, number>();
const add = (map: Map<string, number>, key: string, value: number) => map.set(key, (map.get(key) ?? 0) + value);

let idleMicros = 0;
for (const [id, micros] of selfMicros) {
  const node = byId.get(id);
  if (!node) continue;
  if (node.callFrame.functionName === '(idle)') {
    idleMicros += micros;
    continue;
  }
  add(byComponent, componentOf(node), micros);
  add(selfByArea, areaOf(node.callFrame.url, node.callFrame.functionName), micros);
  add(selfByFunction, functionKey(node), micros);
  // A function counts once per stack even when it recurses.
  const seen = new Set<string>();
  for (const frame of stackOf(id)) {
    const key = functionKey(frame);
    if (!seen.has(key)) {
      seen.add(key);
      add(totalByFunction, key, micros);
    }
  }
}
const busyMicros = [...byComponent.values()].reduce((sum, value) => sum + value, 0);

const print = (title: string, map: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  for (const [key, micros] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(
      `${((100 * micros) / busyMicros).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(7)} ms  ${key}\n`,
    );
  }
};
process.stdout.write(`${file}: ${(busyMicros / 1e6).toFixed(2)} s busy, ${(idleMicros / 1e6).toFixed(2)} s idle\n`);
print('busy time by component', byComponent);
print('self time by package / file', selfByArea);
print('self time by function', selfByFunction);
print('total time by function (self + callees; the root and event-loop frames come first)', totalByFunction);
