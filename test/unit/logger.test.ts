import { Writable } from 'node:stream';
import { createLogger } from '@ledger/shared';
import { describe, expect, it } from 'vitest';

describe('logger redaction', () => {
  it('hides the arguments ioredis attaches to a failed AUTH (they hold the Redis password)', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger('test', 'info', sink);
    const error = Object.assign(new Error('WRONGPASS invalid username-password pair'), {
      command: { name: 'auth', args: ['default', 'hunter2-redis-password'] },
    });

    logger.error({ err: error }, 'Redis connection error');
    logger.warn({ outage: { err: error } }, 'nested');

    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).not.toContain('hunter2-redis-password');
      expect(JSON.parse(line)).toMatchObject({ msg: expect.any(String) });
    }
    expect(JSON.parse(lines[0] ?? '{}').err).toMatchObject({
      message: 'WRONGPASS invalid username-password pair',
      command: { name: 'auth', args: '[redacted]' },
    });
  });
});
