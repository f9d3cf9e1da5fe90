#!/usr/bin/env node
// Runs the project's own Prisma CLI (node_modules/prisma) with every argument passed through,
// using the offline schema engine bridge (./schema-engine.mjs) instead of the native engine that
// the CLI would download. A PRISMA_SCHEMA_ENGINE_BINARY already set by the user wins.
//
//   node tools/prisma-offline/prisma.mjs migrate deploy

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = path.join(path.dirname(createRequire(import.meta.url).resolve('prisma/package.json')), 'build', 'index.js');
const bridge = fileURLToPath(new URL('./schema-engine.mjs', import.meta.url));

const child = spawn(process.execPath, [cli, ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY || bridge },
});

// Stay alive until the CLI exits, so its exit status is the one reported. Ctrl+C already reaches
// the CLI (same process group); other termination signals are passed on.
const signalHandlers = { SIGINT: () => {}, SIGTERM: () => child.kill('SIGTERM'), SIGHUP: () => child.kill('SIGHUP') };
for (const [signal, handler] of Object.entries(signalHandlers)) process.on(signal, handler);

child.on('error', (error) => {
  console.error(`Could not start the Prisma CLI (${cli}): ${error.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    // Die by the same signal, so a shell reports it the same way (e.g. status 130 for SIGINT).
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});
