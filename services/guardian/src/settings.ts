import { readFileSync } from 'node:fs';
import { fieldPath } from '@vigil/proto';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type GuardianConfig, guardianConfigSchema } from './config.js';
import { notifyConfigFromEnv } from './notify/config.js';

type Env = Readonly<Record<string, string | undefined>>;

/** A bad start-up configuration; `issues` names every bad setting by its env var or file key. */
export class GuardianSettingsError extends Error {
  readonly code = 'VIGIL_GUARDIAN_CONFIG';
  constructor(readonly issues: { field: string; message: string }[]) {
    super(`invalid configuration: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`);
    this.name = 'GuardianSettingsError';
  }
}

const port = z.preprocess(
  (v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z.int('must be a whole number').min(0).max(65_535),
);

const processSchema = z.strictObject({
  /** Only Redis: the embedded store lives inside the flag server's process (see docs/guardian.md). */
  store: z.literal('redis', {
    error:
      'must be redis: the embedded store only exists inside the flag server process; ' +
      'embed the guardian there with createGuardian({ store }) instead',
  }),
  redisUrl: z.string().regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL'),
  redisPrefix: z.string().min(1).max(128),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  /** Port of the Prometheus endpoint (`GET /metrics`, `/healthz`); 0 turns it off. */
  metricsPort: port,
  metricsHost: z.string().min(1),
});

/** How the `vigil-guardian` process runs: its store, logs and metrics endpoint, and the guardian config. */
export interface GuardianSettings extends z.infer<typeof processSchema> {
  config: GuardianConfig;
}

/** Which env var sets which process setting. */
export const PROCESS_ENV_VARS = {
  VIGIL_STORE: 'store',
  REDIS_URL: 'redisUrl',
  VIGIL_REDIS_PREFIX: 'redisPrefix',
  VIGIL_LOG_LEVEL: 'logLevel',
  VIGIL_GUARDIAN_METRICS_PORT: 'metricsPort',
  VIGIL_GUARDIAN_METRICS_HOST: 'metricsHost',
} as const;

/** Env vars that set guardian config fields (over the config file). */
const CONFIG_ENV_VARS = { VIGIL_GUARDIAN_ID: 'id', VIGIL_GUARDIAN_TICK_MS: 'tickMs' } as const;

function readFile(path: string): Record<string, unknown> {
  let data: unknown;
  try {
    data = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new GuardianSettingsError([
      { field: 'VIGIL_GUARDIAN_CONFIG', message: `cannot read ${path}: ${(error as Error).message}` },
    ]);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data))
    throw new GuardianSettingsError([
      { field: 'VIGIL_GUARDIAN_CONFIG', message: `${path} must hold a mapping` },
    ]);
  return data as Record<string, unknown>;
}

/**
 * The process settings from env vars, and the guardian config from the file `VIGIL_GUARDIAN_CONFIG`
 * (YAML or JSON, `guardianConfigSchema`) with `VIGIL_GUARDIAN_ID` / `VIGIL_GUARDIAN_TICK_MS` over it.
 * Without a `notify` section the integrations come from their env vars (`notifyConfigFromEnv`).
 * Throws a `GuardianSettingsError` naming every bad setting.
 */
export function loadGuardianSettings(env: Env = process.env): GuardianSettings {
  const issues: { field: string; message: string }[] = [];
  const raw: Record<string, unknown> = {
    store: env.VIGIL_STORE || 'redis',
    redisUrl: env.REDIS_URL,
    redisPrefix: env.VIGIL_REDIS_PREFIX || 'vigil:',
    logLevel: env.VIGIL_LOG_LEVEL || 'info',
    metricsPort: env.VIGIL_GUARDIAN_METRICS_PORT || 9464,
    metricsHost: env.VIGIL_GUARDIAN_METRICS_HOST || '127.0.0.1',
  };
  const envVarOf = Object.fromEntries(Object.entries(PROCESS_ENV_VARS).map(([name, field]) => [field, name]));
  const processed = processSchema.safeParse(raw);
  if (!processed.success) {
    for (const issue of processed.error.issues) {
      const field = String(issue.path[0] ?? '');
      issues.push({
        field: envVarOf[field] ?? field,
        message: field === 'redisUrl' && raw.redisUrl === undefined ? 'required' : issue.message,
      });
    }
  }

  const config = guardianConfigFrom(env, issues);
  if (issues.length > 0 || !processed.success || config === undefined)
    throw new GuardianSettingsError(issues);
  return { ...processed.data, config };
}

/**
 * The guardian's policy and notification settings from `VIGIL_GUARDIAN_CONFIG` and env vars, without
 * the process settings (store, metrics port): what a guardian running inside the flag server needs.
 */
export function loadGuardianConfig(env: Env = process.env): GuardianConfig {
  const issues: { field: string; message: string }[] = [];
  const config = guardianConfigFrom(env, issues);
  if (config === undefined || issues.length > 0) throw new GuardianSettingsError(issues);
  return config;
}

function guardianConfigFrom(
  env: Env,
  issues: { field: string; message: string }[],
): GuardianConfig | undefined {
  const file = env.VIGIL_GUARDIAN_CONFIG ? readFile(env.VIGIL_GUARDIAN_CONFIG) : {};
  const input: Record<string, unknown> = { ...file };
  for (const [name, field] of Object.entries(CONFIG_ENV_VARS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    input[field] = field === 'tickMs' && /^\d+$/.test(value) ? Number(value) : value;
  }
  if (input.notify === undefined) input.notify = notifyConfigFromEnv(env);
  const config = guardianConfigSchema.safeParse(input);
  if (config.success) return config.data;
  const fromEnv = Object.fromEntries(Object.entries(CONFIG_ENV_VARS).map(([name, field]) => [field, name]));
  const where = env.VIGIL_GUARDIAN_CONFIG ?? 'the notify config derived from env vars';
  for (const issue of config.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        issues.push({
          field: `${fieldPath([...issue.path, key])} (in ${where})`,
          message: 'unknown setting',
        });
      continue;
    }
    const top = String(issue.path[0] ?? '');
    const name =
      fromEnv[top] && env[fromEnv[top]] !== undefined
        ? fromEnv[top]
        : `${fieldPath(issue.path)} (in ${where})`;
    issues.push({ field: name, message: issue.message });
  }
  return undefined;
}
