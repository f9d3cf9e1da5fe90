import { describe, expect, it } from 'vitest';
import { startChild } from '@ledger/testkit';

// runService(): whatever ends the process, every resource is closed, last opened first, each step
// even when an earlier one fails, and the exit code says whether all went well.

const FIXTURE = 'test/fixtures/service.ts';
const closings = (lines: string[]) => lines.filter((line) => /^clos(ed|ing) /.test(line));
const EXPECTED_ORDER = ['closed third', 'closing second', 'closed first'];

describe('runService', () => {
  it('SIGTERM closes every step in reverse order, and exits 1 because one failed', async () => {
    const service = startChild({ script: FIXTURE, env: { LOG_LEVEL: 'info', LOG_FORMAT: 'json' } });
    await service.waitFor(/test service started/);
    expect(await service.stop('SIGTERM')).toBe(1);
    expect(closings(service.lines)).toEqual(EXPECTED_ORDER);
    expect(service.lines.join('\n')).toContain('shutdown step \\"second\\" failed');
  });

  it.each(['throw', 'reject'])('an uncaught %s is logged, everything is closed, and the process exits 1', async (failure) => {
    const service = startChild({ script: FIXTURE, env: { LOG_LEVEL: 'info', LOG_FORMAT: 'json', SERVICE_FAILURE: failure } });
    const exit = await new Promise((resolve) => service.child.once('exit', resolve));
    expect(exit).toBe(1);
    const fatal = service.lines.find((line) => line.includes('uncaught error; shutting down'));
    expect(fatal).toContain(failure === 'throw' ? 'thrown later' : 'rejected later');
    expect(closings(service.lines)).toEqual(EXPECTED_ORDER);
  });
});
