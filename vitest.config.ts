import { defineConfig } from 'vitest/config';

// One runner for the whole workspace; each package's tests resolve sibling packages to their
// TypeScript sources through the "@vigil/source" export condition, so no build is needed to test.
export default defineConfig({
  resolve: { conditions: ['@vigil/source'] },
  ssr: { resolve: { conditions: ['@vigil/source'] } },
  test: {
    include: [
      'proto/test/**/*.test.ts',
      'sdks/*/test/**/*.test.ts',
      'services/*/test/**/*.test.ts',
      'cli/test/**/*.test.ts',
      'demo/test/**/*.test.ts',
      'system-tests/test/**/*.test.ts',
      'bench/test/**/*.test.ts',
      'console/test/**/*.test.ts',
    ],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
