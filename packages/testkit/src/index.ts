export * from './cleanup.js';
export * from './cli.js';
export * from './ports.js';
export * from './postgres.js';
export * from './processes.js';
export * from './random.js';
export * from './wait.js';
