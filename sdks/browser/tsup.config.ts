import { fileURLToPath } from 'node:url';
import { defineConfig, type Options } from 'tsup';

// Absolute paths, so the tests can build the bundle from the workspace root.
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const protoRuntime = here('./src/proto-runtime.ts');

/** Resolves `@vigil/proto` to the zod-free module holding what evaluation uses at run time. */
const zodFreeProto: NonNullable<Options['esbuildPlugins']>[number] = {
  name: 'vigil-proto-runtime',
  setup(build) {
    build.onResolve({ filter: /^@vigil\/proto$/ }, () => ({ path: protoRuntime }));
  },
};

const shared: Options = {
  entry: { index: here('./src/index.ts') },
  tsconfig: here('./tsconfig.json'),
  // The core and the proto constants go into both builds: a page needs no other package.
  noExternal: ['@vigil/core', '@vigil/proto'],
  esbuildPlugins: [zodFreeProto],
  esbuildOptions(options) {
    options.conditions = ['@vigil/source'];
  },
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  treeshake: true,
};

export default defineConfig([
  {
    ...shared,
    // the OpenFeature provider is its own entry, so the SDK alone never loads @openfeature/web-sdk
    entry: { index: here('./src/index.ts'), openfeature: here('./src/openfeature.ts') },
    external: ['@openfeature/web-sdk', '@openfeature/core'],
    format: ['esm'],
    dts: true,
  },
  {
    ...shared,
    format: ['iife'],
    globalName: 'Vigil',
    minify: true,
    outExtension: () => ({ js: '.iife.js' }),
    entry: { vigil: here('./src/index.ts') },
  },
]);
