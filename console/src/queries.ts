import { type QueryClient, useQuery } from '@tanstack/react-query';
import type { AuditEntry, Flag, FlagHealth, Incident, Segment, TokenInfo } from '@vigil/proto';
import { type Api, etagVersion, seg } from './lib/api.js';
import { useApi, useSession } from './session.js';

// Server state: one query key per resource, so the live feed can invalidate exactly what changed.

export const keys = {
  envs: ['envs'] as const,
  flags: (env: string) => ['flags', env] as const,
  flag: (env: string, key: string) => ['flag', env, key] as const,
  health: (env: string, key: string) => ['health', env, key] as const,
  segments: (env: string) => ['segments', env] as const,
  incidents: ['incidents'] as const,
  incident: (id: string) => ['incident', id] as const,
  postmortem: (id: string) => ['postmortem', id] as const,
  audit: (env: string) => ['audit', env] as const,
  tokens: ['tokens'] as const,
};

export interface FlagList {
  revision: number;
  flags: Flag[];
}

/** A flag with the version its ETag names (the `If-Match` of the next write). */
export interface FlagWithEtag {
  flag: Flag;
  version: number;
}

export function useEnvs() {
  const api = useApi();
  return useQuery({
    queryKey: keys.envs,
    queryFn: () => api.get<{ envs: string[] }>('/envs').then((r) => r.envs),
    staleTime: 60_000,
  });
}

export function useFlags(env: string) {
  const api = useApi();
  return useQuery({
    queryKey: keys.flags(env),
    queryFn: () => api.get<FlagList>(`/envs/${seg(env)}/flags`),
  });
}

export async function fetchFlag(api: Api, env: string, key: string): Promise<FlagWithEtag> {
  const r = await api.send<Flag>('GET', `/envs/${seg(env)}/flags/${seg(key)}`);
  return { flag: r.body, version: etagVersion(r.etag) ?? r.body.version };
}

export function useFlag(env: string, key: string) {
  const api = useApi();
  return useQuery({ queryKey: keys.flag(env, key), queryFn: () => fetchFlag(api, env, key) });
}

export function useSegments(env: string) {
  const api = useApi();
  return useQuery({
    queryKey: keys.segments(env),
    queryFn: () => api.get<{ segments: Segment[] }>(`/envs/${seg(env)}/segments`).then((r) => r.segments),
  });
}

/** The guardian's verdict; polled every second while `poll` (the evidence and rollout pages). */
export function useHealth(env: string, key: string, poll: boolean) {
  const api = useApi();
  return useQuery({
    queryKey: keys.health(env, key),
    queryFn: () =>
      api.get<FlagHealth & Record<string, unknown>>(`/envs/${seg(env)}/flags/${seg(key)}/health`),
    refetchInterval: poll ? 1000 : false,
  });
}

export function useIncidents() {
  const api = useApi();
  // A token bound to one environment may not list incidents (403): do not ask.
  const bound = useSession().session?.env !== undefined;
  return useQuery({
    enabled: !bound,
    queryKey: keys.incidents,
    queryFn: () => api.get<{ incidents: Incident[] }>('/incidents?limit=500').then((r) => r.incidents),
  });
}

export function useIncident(id: string) {
  const api = useApi();
  return useQuery({ queryKey: keys.incident(id), queryFn: () => api.get<Incident>(`/incidents/${seg(id)}`) });
}

export function usePostmortem(id: string) {
  const api = useApi();
  return useQuery({
    queryKey: keys.postmortem(id),
    queryFn: () => api.get<string>(`/incidents/${seg(id)}/postmortem`, { text: true }),
  });
}

export function useAudit(env: string, target: string) {
  const api = useApi();
  return useQuery({
    queryKey: [...keys.audit(env), target],
    queryFn: () =>
      api
        .get<{ entries: AuditEntry[] }>(
          `/envs/${seg(env)}/audit?limit=1000${target ? `&target=${encodeURIComponent(target)}` : ''}`,
        )
        .then((r) => r.entries),
  });
}

export function useTokens() {
  const api = useApi();
  return useQuery({
    queryKey: keys.tokens,
    queryFn: () => api.get<{ tokens: TokenInfo[] }>('/tokens').then((r) => r.tokens),
  });
}

/**
 * Applies a change the server announced: refetches each changed flag (a handful) and patches it into
 * the list, so a 5,000-flag list is not reloaded for one kill; many at once reload the list.
 */
export async function applyChange(
  client: QueryClient,
  api: Api,
  change: { env: string; revision?: number; flags?: string[]; deleted?: string[] },
): Promise<void> {
  const { env } = change;
  const changed = change.flags ?? [];
  const deleted = change.deleted ?? [];
  void client.invalidateQueries({ queryKey: keys.audit(env) });
  void client.invalidateQueries({ queryKey: keys.segments(env) });
  for (const key of [...changed, ...deleted])
    void client.invalidateQueries({ queryKey: keys.health(env, key) });
  const list = client.getQueryData<FlagList>(keys.flags(env));
  if (!list || changed.length > 20) {
    await client.invalidateQueries({ queryKey: keys.flags(env) });
    for (const key of changed) void client.invalidateQueries({ queryKey: keys.flag(env, key) });
    return;
  }
  const fetched = await Promise.all(
    changed.map((key) =>
      fetchFlag(api, env, key).then(
        (f) => f,
        () => undefined,
      ),
    ),
  );
  for (const f of fetched) if (f) client.setQueryData(keys.flag(env, f.flag.key), f);
  for (const key of deleted) client.removeQueries({ queryKey: keys.flag(env, key) });
  client.setQueryData<FlagList>(keys.flags(env), (old) => {
    if (!old) return old;
    const byKey = new Map(old.flags.map((f) => [f.key, f]));
    for (const key of deleted) byKey.delete(key);
    for (const f of fetched) if (f) byKey.set(f.flag.key, f.flag);
    const flags = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { revision: Math.max(old.revision, change.revision ?? 0), flags };
  });
}
