// `npm run chaos`: the fault-injection suite on its own control plane, rows one after another,
// the table and the RESULT line printed last by its reporter; and the suite's own rules
// (project chaos-rules: no cluster, `npx vitest run --config test/chaos/vitest.config.ts
// --project chaos-rules`). Kept apart from the root config so that `vitest run` (npm test)
// does not run the suite.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: ['./test/chaos/reporter.ts'],
    // Rows share a 2-core machine with their control plane: one file at a time.
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'chaos-rules',
          include: ['test/chaos/history.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'chaos',
          include: ['test/chaos/chaos.test.ts'],
          environment: 'node',
          globalSetup: ['test/chaos/global-setup.ts'],
          testTimeout: 240_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
