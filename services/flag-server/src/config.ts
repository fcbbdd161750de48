import { readFileSync } from 'node:fs';
import { durationMs, fieldPath } from '@vigil/proto';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { VigilError } from './errors.js';

const MIB = 1024 * 1024;

/** A whole number, from a config file (number) or an env var (digits). */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    z.int('must be a whole number').min(min).max(max),
  );

/** Milliseconds: a whole number of ms, or a duration such as `500ms`, `15s`, `1m`. */
const ms = (min: number) =>
  z.preprocess((v) => {
    if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) return Number(v);
    if (typeof v === 'string' && /^\d{1,9}(ms|s|m|h|d)$/.test(v)) return durationMs(v as `${number}s`);
    return v;
  }, z.int('must be milliseconds or a duration such as 500ms, 15s, 1m').min(min));

const bool = z.preprocess((v) => {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0' || v === '') return false;
  return v;
}, z.boolean('must be true or false'));

/** The flag server's settings; every field can come from the config file, and most from an env var. */
export const configSchema = z.strictObject({
  port: int(0, 65_535).default(4242),
  host: z.string().min(1).default('127.0.0.1'),
  store: z.enum(['embedded', 'redis']).default('embedded'),
  redisUrl: z
    .string()
    .regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL')
    .optional(),
  dataDir: z.string().min(1).default('.vigil/data'),
  /** Secret of the admin token created on first start; random when absent. */
  adminToken: z
    .string()
    .regex(/^[A-Za-z0-9._~+/=-]{16,256}$/, 'must be 16–256 characters of A-Za-z0-9._~+/=-')
    .optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * The admin API's budget (`/api/v1` but evaluation, kill and revive): requests per window per token,
   * or per client IP without a valid one. 0 turns every rate limit off (see `rate-limit.ts`).
   */
  rateLimitMax: int(0).default(600),
  /**
   * `POST /v1/metrics` counts apart from the admin API, with its own budget per window, SDK key and
   * client IP: a Node SDK flushes every second, and many instances may share one egress IP.
   */
  metricsRateLimitMax: int(1).default(6000),
  /** `POST /api/v1/envs/:env/evaluate`'s own budget per window and token, sized for services. */
  evaluateRateLimitMax: int(1).default(60_000),
  /** Polling (`GET /v1/flags`) and OFREP's own budget per window, SDK key and client IP. */
  sdkRateLimitMax: int(1).default(60_000),
  /** Kill and revive's own budget per window and token: no other traffic can spend it. */
  killRateLimitMax: int(1).default(6000),
  rateLimitWindowMs: ms(1).default(60_000),
  /** Largest accepted request body, in bytes. */
  bodyLimit: int(1024, 64 * MIB).default(MIB),
  /** Heartbeat period on SDK streams; a connection silent for two periods is dropped. */
  heartbeatMs: ms(10).default(15_000),
  /** A stream whose unsent bytes exceed this is closed (4408) instead of buffered further. */
  streamMaxBuffer: int(1024).default(4 * MIB),
  /** Recent changes kept in memory per environment, so reconnecting SDKs resume without the store. */
  changeBuffer: int(0, 1_000_000).default(1000),
  /** How long a verified token is trusted before it is looked up again (stale entries serve during a store outage). */
  tokenCacheMs: ms(0).default(5000),
  /** Trust X-Forwarded-* headers (behind a reverse proxy). */
  trustProxy: bool.default(false),
  /** How long a console sign-in lasts (the session cookie's lifetime). */
  sessionTtlMs: ms(1000).default(12 * 60 * 60 * 1000),
  /**
   * The secret console session cookies are signed with; give every replica the same one so each accepts
   * the others' sessions. Random per process when absent (sessions then end when the process does).
   */
  sessionSecret: z.string().min(32, 'must be at least 32 characters').max(1024).optional(),
  /** The built console (`console/dist`) served at `/`; by default the workspace's `console/dist`. */
  consoleDir: z.string().min(1).optional(),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Which env var sets which field. */
export const ENV_VARS: Record<string, keyof Config> = {
  VIGIL_PORT: 'port',
  VIGIL_HOST: 'host',
  VIGIL_STORE: 'store',
  REDIS_URL: 'redisUrl',
  VIGIL_DATA_DIR: 'dataDir',
  VIGIL_ADMIN_TOKEN: 'adminToken',
  VIGIL_LOG_LEVEL: 'logLevel',
  VIGIL_RATE_LIMIT_MAX: 'rateLimitMax',
  VIGIL_METRICS_RATE_LIMIT_MAX: 'metricsRateLimitMax',
  VIGIL_EVALUATE_RATE_LIMIT_MAX: 'evaluateRateLimitMax',
  VIGIL_SDK_RATE_LIMIT_MAX: 'sdkRateLimitMax',
  VIGIL_KILL_RATE_LIMIT_MAX: 'killRateLimitMax',
  VIGIL_RATE_LIMIT_WINDOW: 'rateLimitWindowMs',
  VIGIL_BODY_LIMIT: 'bodyLimit',
  VIGIL_HEARTBEAT: 'heartbeatMs',
  VIGIL_STREAM_MAX_BUFFER: 'streamMaxBuffer',
  VIGIL_CHANGE_BUFFER: 'changeBuffer',
  VIGIL_TOKEN_CACHE: 'tokenCacheMs',
  VIGIL_TRUST_PROXY: 'trustProxy',
  VIGIL_SESSION_TTL: 'sessionTtlMs',
  VIGIL_SESSION_SECRET: 'sessionSecret',
  VIGIL_CONSOLE_DIR: 'consoleDir',
};

/** Reads a YAML or JSON config file (JSON is YAML); the top level must be a mapping. */
function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new VigilError(
      'VIGIL_SERVER_CONFIG',
      `VIGIL_CONFIG: cannot read ${path}: ${(error as Error).message}`,
    );
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new VigilError(
      'VIGIL_SERVER_CONFIG',
      `VIGIL_CONFIG: ${path} is not YAML/JSON: ${(error as Error).message}`,
    );
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new VigilError('VIGIL_SERVER_CONFIG', `VIGIL_CONFIG: ${path} must hold a mapping of settings`);
  }
  return data as Record<string, unknown>;
}

/**
 * The configuration from env vars over an optional config file (`VIGIL_CONFIG`) over defaults.
 * Throws a `VIGIL_SERVER_CONFIG` error whose message names every bad setting by the name it was
 * given under (the env var, or the file's key), with `details` listing them.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const file = env.VIGIL_CONFIG ? readConfigFile(env.VIGIL_CONFIG) : {};
  const raw: Record<string, unknown> = { ...file };
  const source = new Map<string, string>();
  for (const key of Object.keys(file)) source.set(key, `${key} (in ${env.VIGIL_CONFIG})`);
  for (const [name, field] of Object.entries(ENV_VARS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    raw[field] = value;
    source.set(field, name);
  }
  // A missing field is named by the env var that would set it.
  const envVarOf = new Map(Object.entries(ENV_VARS).map(([name, field]) => [field as string, name]));
  return parseConfig(raw, (field) => source.get(field) ?? envVarOf.get(field) ?? field);
}

/** Validates settings given as an object (tests, embedding); `nameOf` says how to name a field in errors. */
export function parseConfig(
  input: ConfigInput | Record<string, unknown>,
  nameOf = (field: string) => field,
): Config {
  const parsed = configSchema.safeParse(input);
  const issues = parsed.success
    ? []
    : parsed.error.issues.map((issue) => {
        if (issue.code === 'unrecognized_keys') {
          return { field: issue.keys.map((key) => nameOf(key)).join(', '), message: 'unknown setting' };
        }
        const [top, ...rest] = issue.path;
        const field =
          top === undefined
            ? fieldPath(issue.path)
            : `${nameOf(String(top))}${rest.length ? ` ${fieldPath(rest)}` : ''}`;
        return { field, message: issue.message };
      });
  // Checked on the input so it is reported together with any other bad field.
  const raw = input as Record<string, unknown>;
  if (raw.store === 'redis' && (raw.redisUrl === undefined || raw.redisUrl === '')) {
    issues.push({ field: nameOf('redisUrl'), message: 'required when store is redis' });
  }
  if (parsed.success && issues.length === 0) return parsed.data;
  const summary = issues.map((i) => `${i.field}: ${i.message}`).join('; ');
  throw new VigilError('VIGIL_SERVER_CONFIG', `invalid configuration: ${summary}`, issues);
}
