import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The console is served by the flag server at `/` (same origin, so the session cookie and the CSRF
// header just work). `pnpm --filter @vigil/console dev` proxies the API to VIGIL_URL.
const target = process.env.VIGIL_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  plugins: [react()],
  // @vigil/proto is consumed from its TypeScript sources, like everywhere else in the workspace.
  resolve: { conditions: ['@vigil/source'] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The server's CSP forbids inline scripts and styles: never inline assets as data: URLs either.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: { proxy: { '/api': { target, changeOrigin: false } } },
});
