#!/usr/bin/env node
// Runs a compiled entry point (`npm run receiver`, `npm run worker`, the operator commands) in this
// same process, or says in one line that `npm run build` has not run yet. Node must be started with
// --conditions=compiled so that @ledger/shared resolves to its compiled JavaScript as well.
//
//   node --conditions=compiled tools/run-built.mjs apps/order-worker/dist/main.js [args…]

import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const entry = path.resolve(process.argv[2] ?? '');
if (!process.argv[2] || !existsSync(entry)) {
  console.error(
    `${process.argv[2] ?? 'no entry point given'}: not built; run \`npm run build\` first (npm start and npm run dev run from source)`,
  );
  process.exit(1);
}
// The entry point reads its own arguments from process.argv.slice(2).
process.argv.splice(1, 2, entry);
await import(pathToFileURL(entry).href);
