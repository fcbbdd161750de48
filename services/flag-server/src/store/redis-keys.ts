/** Key names of one Vigil deployment in Redis, all under one prefix (default `vigil:`). */
export interface RedisKeys {
  /** The per-environment keys; their prefix is `${prefix}env:${env}:`. */
  env(env: string): { rev: string; flags: string; segments: string; log: string; audit: string };
  /** Prefix of per-environment keys, for scripts that walk every environment. */
  envPrefix: string;
  /** Set of every environment ever written. */
  envs: string;
  /** Global stream of every change of every environment, tailed by every replica. */
  changes: string;
  /** Hash token id → token JSON. */
  tokens: string;
  /** Hash secret hash → token id. */
  tokenSecrets: string;
  /** Stream of cohort summaries, read through consumer groups. */
  metrics: string;
  /** Hash incident id → incident JSON. */
  incidents: string;
  /** Sorted set of incident ids by detection time. */
  incidentTimes: string;
  episode(key: string): string;
  /** When an episode's incident was resolved. */
  episodeResolved(key: string): string;
  /** The guardian's latest verdict on a flag (JSON, with an expiry). */
  verdict(env: string, flag: string): string;
  /** Hash outbox id → item JSON. */
  outbox: string;
  /** Sorted set of outbox ids by `notBefore`. */
  outboxDue: string;
  lock(name: string): string;
  /** An idempotency record (a hash, expiring), by claim id. */
  idempotency(id: string): string;
}

/**
 * Builds the key names under `prefix`. Scripts touch keys of several environments and the global
 * stream at once, so this layout is for a single Redis (or a Sentinel-managed primary), not Cluster.
 */
export function redisKeys(prefix: string): RedisKeys {
  const envPrefix = `${prefix}env:`;
  return {
    envPrefix,
    env(env) {
      const base = `${envPrefix}${env}:`;
      return {
        rev: `${base}rev`,
        flags: `${base}flags`,
        segments: `${base}segments`,
        log: `${base}log`,
        audit: `${base}audit`,
      };
    },
    envs: `${prefix}envs`,
    changes: `${prefix}changes`,
    tokens: `${prefix}tokens`,
    tokenSecrets: `${prefix}tokens:secret`,
    metrics: `${prefix}metrics`,
    incidents: `${prefix}incidents`,
    incidentTimes: `${prefix}incidents:time`,
    episode: (key) => `${prefix}episode:${key}`,
    episodeResolved: (key) => `${prefix}episode-resolved:${key}`,
    // Environment names and flag keys cannot hold a colon, so the pair is unambiguous.
    verdict: (env, flag) => `${prefix}verdict:${env}:${flag}`,
    outbox: `${prefix}outbox`,
    outboxDue: `${prefix}outbox:due`,
    lock: (name) => `${prefix}lock:${name}`,
    idempotency: (id) => `${prefix}idem:${id}`,
  };
}
