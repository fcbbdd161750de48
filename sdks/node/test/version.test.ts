import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SDK_NAME, SDK_VERSION } from '../src/index.js';

describe('SDK identity', () => {
  it('the version sent in hello is the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(SDK_VERSION).toBe(pkg.version);
    expect(SDK_NAME).toBe(`@vigil/node@${pkg.version}`);
  });
});
