import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../src/config.js';
import { isVigilError, type VigilError } from '../src/errors.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function configFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-config-'));
  dirs.push(dir);
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** The error `fn` throws; fails when it throws none. */
function failure(fn: () => unknown): VigilError {
  try {
    fn();
  } catch (error) {
    if (isVigilError(error, 'VIGIL_SERVER_CONFIG')) return error;
    throw error;
  }
  throw new Error('expected a configuration error');
}

describe('configuration', () => {
  it('has working defaults', () => {
    expect(loadConfig({})).toMatchObject({
      port: 4242,
      host: '127.0.0.1',
      store: 'embedded',
      dataDir: '.vigil/data',
      logLevel: 'info',
      heartbeatMs: 15_000,
      bodyLimit: 1024 * 1024,
      streamMaxBuffer: 4 * 1024 * 1024,
      rateLimitMax: 600,
      trustProxy: false,
    });
  });

  it('reads env vars, with durations in ms or units', () => {
    const config = loadConfig({
      VIGIL_PORT: '8080',
      VIGIL_STORE: 'redis',
      REDIS_URL: 'redis://cache:6379/2',
      VIGIL_HEARTBEAT: '5s',
      VIGIL_RATE_LIMIT_WINDOW: '250',
      VIGIL_TRUST_PROXY: 'true',
      VIGIL_ADMIN_TOKEN: 'a-long-enough-admin-token',
    });
    expect(config).toMatchObject({
      port: 8080,
      store: 'redis',
      redisUrl: 'redis://cache:6379/2',
      heartbeatMs: 5000,
      rateLimitWindowMs: 250,
      trustProxy: true,
      adminToken: 'a-long-enough-admin-token',
    });
  });

  it.each([
    [{ VIGIL_PORT: '70000' }, 'VIGIL_PORT'],
    [{ VIGIL_PORT: 'eighty' }, 'VIGIL_PORT'],
    [{ VIGIL_STORE: 'postgres' }, 'VIGIL_STORE'],
    [{ VIGIL_STORE: 'redis' }, 'REDIS_URL'],
    [{ VIGIL_STORE: 'redis', REDIS_URL: 'http://cache' }, 'REDIS_URL'],
    [{ VIGIL_LOG_LEVEL: 'loud' }, 'VIGIL_LOG_LEVEL'],
    [{ VIGIL_HEARTBEAT: 'often' }, 'VIGIL_HEARTBEAT'],
    [{ VIGIL_ADMIN_TOKEN: 'short' }, 'VIGIL_ADMIN_TOKEN'],
    [{ VIGIL_BODY_LIMIT: '10' }, 'VIGIL_BODY_LIMIT'],
    [{ VIGIL_TRUST_PROXY: 'maybe' }, 'VIGIL_TRUST_PROXY'],
  ])('a bad value stops start-up naming the field: %o', (env, field) => {
    const error = failure(() => loadConfig(env));
    expect(error.message).toContain(field);
    expect(error.details).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
  });

  it('names every bad field at once', () => {
    const error = failure(() => loadConfig({ VIGIL_PORT: '-1', VIGIL_LOG_LEVEL: 'loud' }));
    expect(error.message).toMatch(/VIGIL_PORT.*VIGIL_LOG_LEVEL/);
  });

  it('reads a YAML file, under env vars, and names its bad or unknown keys', async () => {
    const yaml = await configFile('vigil.yaml', 'port: 9000\nheartbeatMs: 2s\nlogLevel: debug\n');
    expect(loadConfig({ VIGIL_CONFIG: yaml, VIGIL_LOG_LEVEL: 'warn' })).toMatchObject({
      port: 9000,
      heartbeatMs: 2000,
      logLevel: 'warn',
    });

    const bad = await configFile('bad.yaml', 'port: 9000.5\nprot: 1\n');
    const error = failure(() => loadConfig({ VIGIL_CONFIG: bad }));
    expect(error.message).toContain(`port (in ${bad})`);
    expect(error.message).toContain(`prot (in ${bad})`);
  });

  it('reads a JSON file; an unreadable or malformed file is named', async () => {
    const json = await configFile(
      'vigil.json',
      JSON.stringify({ store: 'redis', redisUrl: 'redis://localhost:6379' }),
    );
    expect(loadConfig({ VIGIL_CONFIG: json })).toMatchObject({ store: 'redis' });
    expect(failure(() => loadConfig({ VIGIL_CONFIG: '/nonexistent/vigil.yaml' })).message).toMatch(
      /^VIGIL_CONFIG: cannot read/,
    );
    const broken = await configFile('broken.json', '{ "port": ');
    expect(failure(() => loadConfig({ VIGIL_CONFIG: broken })).message).toMatch(
      /^VIGIL_CONFIG: .* is not YAML\/JSON/,
    );
    const list = await configFile('list.yaml', '- port\n');
    expect(failure(() => loadConfig({ VIGIL_CONFIG: list })).message).toContain('mapping');
  });

  it('parseConfig validates objects given in code', () => {
    expect(parseConfig({ port: 0 }).port).toBe(0);
    expect(failure(() => parseConfig({ streamMaxBuffer: 1 })).message).toContain('streamMaxBuffer');
  });
});
