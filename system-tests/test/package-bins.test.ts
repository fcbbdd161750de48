import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// The workspace's bins are small committed launchers (bin/*.js): `pnpm install` links them in a fresh
// clone (a bin pointing into dist/ is a "Failed to create bin" warning there), and each runs the build
// when there is one, the TypeScript sources otherwise. These run them as a user would, from elsewhere.

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');

interface Manifest {
  name: string;
  bin?: Record<string, string>;
  files?: string[];
}

/** The workspace's package folders, from pnpm-workspace.yaml (`dir` and `dir/*` entries). */
function workspacePackages(): string[] {
  const yaml = readFileSync(join(repoRoot, 'pnpm-workspace.yaml'), 'utf8');
  const list = /^packages:\n((?:\s+- .+\n)+)/m.exec(yaml)?.[1] ?? '';
  const dirs: string[] = [];
  for (const line of list.split('\n')) {
    const entry = /^\s+- ['"]?([^'"]+)['"]?$/.exec(line)?.[1];
    if (entry === undefined) continue;
    if (!entry.endsWith('/*')) dirs.push(entry);
    else {
      const parent = entry.slice(0, -2);
      for (const child of readdirSync(join(repoRoot, parent), { withFileTypes: true })) {
        if (child.isDirectory()) dirs.push(`${parent}/${child.name}`);
      }
    }
  }
  return dirs.filter((dir) => existsSync(join(repoRoot, dir, 'package.json')));
}

const bins = workspacePackages().flatMap((dir) => {
  const manifest = JSON.parse(readFileSync(join(repoRoot, dir, 'package.json'), 'utf8')) as Manifest;
  return Object.entries(manifest.bin ?? {}).map(([command, target]) => ({ dir, manifest, command, target }));
});

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `file` (a launcher, or the shim pnpm linked for it) with `args` from a scratch folder. */
function runBin(file: string, args: string[], env: Record<string, string>, cwd: string): Promise<Exit> {
  const child = spawn(file, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: cwd, VIGIL_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('workspace bins', () => {
  const dirs: string[] = [];
  const scratch = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vigil-bins-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('every bin is a committed node launcher outside dist/, shipped in the package files', () => {
    expect(bins.map((bin) => bin.command).sort()).toEqual([
      'vigil',
      'vigil-all-in-one',
      'vigil-demo',
      'vigil-guardian',
      'vigil-server',
    ]);
    for (const { dir, manifest, command, target } of bins) {
      const relative = normalize(target);
      expect(relative.startsWith('dist/'), `${manifest.name} bin ${command} -> ${target}`).toBe(false);
      const file = join(repoRoot, dir, relative);
      expect(existsSync(file), `${file} exists`).toBe(true);
      expect(readFileSync(file, 'utf8').startsWith('#!/usr/bin/env node\n'), `${file} shebang`).toBe(true);
      expect(manifest.files, `${manifest.name} files`).toContain(relative.split('/')[0]);
    }
  });

  it('pnpm install linked the server and guardian bins for the packages that depend on them', async () => {
    const cwd = await scratch();
    const shims = join(repoRoot, 'system-tests/node_modules/.bin');
    const server = await runBin(join(shims, 'vigil-server'), [], { VIGIL_STORE: 'bogus' }, cwd);
    expect(server.stderr).toMatch(/^vigil-server: .*VIGIL_STORE/);
    expect(server.code).toBe(2);
    const guardian = await runBin(join(shims, 'vigil-guardian'), [], { VIGIL_STORE: 'embedded' }, cwd);
    expect(guardian.stderr).toMatch(/^vigil-guardian: invalid configuration: VIGIL_STORE: must be redis/);
    expect(guardian.code).toBe(2);
  });

  it('vigil-all-in-one serves /healthz on the embedded store and exits 0 on SIGTERM', async () => {
    const cwd = await scratch();
    const child = spawn(join(repoRoot, 'system-tests/node_modules/.bin/vigil-all-in-one'), [], {
      cwd,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: cwd,
        VIGIL_LOG_LEVEL: 'warn',
        VIGIL_PORT: '0',
        VIGIL_DATA_DIR: join(cwd, 'data'),
        VIGIL_CONSOLE_DIR: join(cwd, 'no-console'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 20_000;
      let url: string | undefined;
      while (url === undefined) {
        url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`did not start: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('vigil and vigil-demo run from any folder', async () => {
    const cwd = await scratch();
    const version = (
      JSON.parse(readFileSync(join(repoRoot, 'cli/package.json'), 'utf8')) as { version: string }
    ).version;
    const cli = await runBin(join(repoRoot, 'cli/bin/vigil.js'), ['--version'], {}, cwd);
    expect(cli).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    const demo = await runBin(join(repoRoot, 'demo/bin/vigil-demo.js'), ['--help'], {}, cwd);
    expect(demo.stdout).toMatch(/^Usage: pnpm demo/);
    expect(demo.code).toBe(0);
  });
});
