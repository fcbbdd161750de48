import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsx = join(packageDir, '../../node_modules/.bin/tsx');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

describe('pnpm start (flag server and guardian in one process)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('starts on the embedded store with no Redis, prints the URL and admin token, runs the guardian, stops on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'vigil-all-in-one-'));
    dirs.push(dataDir);
    const port = await freePort();
    const child = spawn(tsx, ['--conditions=@vigil/source', 'src/all-in-one.ts'], {
      cwd: packageDir,
      env: {
        ...process.env,
        VIGIL_PORT: String(port),
        VIGIL_DATA_DIR: dataDir,
        VIGIL_LOG_LEVEL: 'warn',
        VIGIL_STORE: '',
        REDIS_URL: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes('Guardian running') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(out).toContain(`listening on http://127.0.0.1:${port} (store: embedded)`);
      expect(out).toMatch(/Bootstrap admin token \(shown once, store it now\):\s+vgl_\S+/);
      expect(out).toContain('Guardian running in this process');
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      // the guardian's metrics share the server's registry
      expect(metrics).toContain('vigil_guardian_');
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
