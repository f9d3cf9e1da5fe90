/** A parsed Stripe parameter tree: strings at the leaves, nested objects and arrays above them. */
export type ParamValue = string | ParamObject | ParamValue[];
/** Parameters by name. */
export interface ParamObject {
  [key: string]: ParamValue;
}

/**
 * Parses a form or query string in Stripe's bracket notation into nested parameters:
 * `metadata[order_id]=o_1&types[0]=charge.refunded&types[1]=charge.dispute.created` becomes
 * `{ metadata: { order_id: 'o_1' }, types: ['charge.refunded', 'charge.dispute.created'] }`.
 * This is what the stripe SDKs send (`stringifyRequestData` in stripe-node). Objects whose keys are
 * all indexes become arrays, in index order. It never throws (it also parses every query string):
 * a malformed name stays one literal key and a later value replaces an earlier one, so the
 * endpoint's validation reports the problem as an unknown or invalid parameter.
 */
export function parseStripeParams(encoded: string): ParamObject {
  const root: Tree = new Map();
  for (const [key, value] of new URLSearchParams(encoded)) {
    assign(root, splitKey(key), value);
  }
  return toParams(root);
}

type Tree = Map<string, Tree | string>;
/** Marks `name[]` segments: each one appends a new element. */
const APPEND = Symbol('append');

function splitKey(key: string): Array<string | typeof APPEND> {
  const open = key.indexOf('[');
  if (open === -1) return [key];
  const segments: Array<string | typeof APPEND> = [key.slice(0, open)];
  const rest = key.slice(open);
  const pattern = /\[([^[\]]*)\]/gy;
  let consumed = 0;
  for (let match = pattern.exec(rest); match !== null; match = pattern.exec(rest)) {
    consumed = pattern.lastIndex;
    const segment = match[1] ?? '';
    segments.push(segment === '' ? APPEND : segment);
  }
  return consumed === rest.length && segments[0] !== '' ? segments : [key];
}

// A Map (not a plain object) keeps `__proto__` and `constructor` ordinary keys: no prototype pollution.
function assign(tree: Tree, path: Array<string | typeof APPEND>, value: string): void {
  let node = tree;
  for (const [i, raw] of path.entries()) {
    const segment = raw === APPEND ? String(node.size) : raw;
    if (i === path.length - 1) {
      node.set(segment, value);
      return;
    }
    const existing = node.get(segment);
    const child: Tree = existing instanceof Map ? existing : new Map();
    node.set(segment, child);
    node = child;
  }
}

function toParams(tree: Tree): ParamObject {
  const result: ParamObject = {};
  for (const [key, value] of tree) {
    Object.defineProperty(result, key, { value: toValue(value), enumerable: true, writable: true, configurable: true });
  }
  return result;
}

function toValue(node: Tree | string): ParamValue {
  if (typeof node === 'string') return node;
  const entries = [...node];
  if (entries.length > 0 && entries.every(([key]) => /^(0|[1-9]\d*)$/.test(key))) {
    return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, child]) => toValue(child));
  }
  return toParams(node);
}
