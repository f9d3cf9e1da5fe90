export * from './database.js';
export * from './domain.js';
export * from './env.js';
export * from './jobs.js';
export * from './logger.js';
export * from './redis.js';
export * from './stripe.js';
export * from './timeout.js';
