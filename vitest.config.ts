import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The fast project (`npm run test:fast`): exactly the files in `test/unit/`, pure logic and
 * in-process tests that need no PostgreSQL, Redis, child process or build, and finish in seconds.
 * Every other test file is a system test, so a new file lands there unless it is put in `test/unit/`.
 */
const FAST_TESTS = ['test/unit/**/*.test.ts'];

export default defineConfig({
  test: {
    // Files run in parallel on the two cores; each has its own database and queue prefix.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-report.json' },
    projects: [
      // No services and no shared state: the files share one module graph per worker (imports once).
      { extends: true, test: { name: 'fast', include: FAST_TESTS, isolate: false } },
      {
        extends: true,
        test: {
          name: 'system',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...FAST_TESTS],
          // Migrates the template database every test file clones (only the system tests use one).
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
  },
});
