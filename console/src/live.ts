import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { applyChange, type FlagList, keys } from './queries.js';
import { useApi, useSession } from './session.js';

/** `connecting` until the feed opens, `live` while it is open, `down` when it failed (polling instead). */
export type LiveState = 'connecting' | 'live' | 'down';

/** While the feed is down, everything on screen refetches this often instead. */
export const FALLBACK_POLL_MS = 2000;

/**
 * Subscribes to the server's change feed (`GET /api/v1/events?env=`, server-sent events, the session
 * cookie authenticates it) and turns each event into cache updates, so a change made anywhere shows
 * on the open page without a reload. EventSource reconnects by itself; while it is down the queries poll.
 */
export function useLiveFeed(env: string | undefined): LiveState {
  const api = useApi();
  const { session } = useSession();
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>('connecting');

  useEffect(() => {
    if (!env || !session) return;
    setState('connecting');
    const source = new EventSource(`/api/v1/events?env=${encodeURIComponent(env)}`, {
      withCredentials: true,
    });
    let poll: ReturnType<typeof setInterval> | undefined;
    const stopPolling = () => {
      if (poll) clearInterval(poll);
      poll = undefined;
    };
    let dropped = false;
    source.onopen = () => {
      setState('live');
      stopPolling();
      // Whatever happened while the feed was down is not in it: catch up once (not on the first
      // open, which follows the page's own fetches: that would load a 5,000-flag list twice).
      if (dropped) void client.invalidateQueries();
      dropped = false;
    };
    source.onerror = () => {
      dropped = true;
      setState('down');
      if (!poll) poll = setInterval(() => void client.invalidateQueries(), FALLBACK_POLL_MS);
    };
    const parse = (e: Event): Record<string, unknown> | undefined => {
      try {
        return JSON.parse((e as MessageEvent<string>).data) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    };
    // The feed starts at the environment's revision then; a list fetched before a write that landed
    // just before the feed opened is older, and is fetched again (once it has arrived, if in flight).
    let unwatch: (() => void) | undefined;
    source.addEventListener('hello', (e) => {
      const data = parse(e);
      const revision = typeof data?.revision === 'number' ? data.revision : undefined;
      if (revision === undefined) return;
      const check = () => {
        const list = client.getQueryData<FlagList>(keys.flags(env));
        if (!list) return false;
        if (list.revision < revision) void client.invalidateQueries({ queryKey: keys.flags(env) });
        return true;
      };
      unwatch?.();
      if (check()) return;
      unwatch = client.getQueryCache().subscribe((event) => {
        if (
          event.type === 'updated' &&
          event.query.queryHash === JSON.stringify(keys.flags(env)) &&
          check()
        ) {
          unwatch?.();
          unwatch = undefined;
        }
      });
    });
    source.addEventListener('change', (e) => {
      const data = parse(e);
      if (!data) return;
      void applyChange(client, api, {
        env: typeof data.env === 'string' ? data.env : env,
        ...(typeof data.revision === 'number' ? { revision: data.revision } : {}),
        flags: Array.isArray(data.flags) ? (data.flags as string[]) : [],
        deleted: Array.isArray(data.deleted) ? (data.deleted as string[]) : [],
      });
    });
    source.addEventListener('incident', (e) => {
      const data = parse(e);
      void client.invalidateQueries({ queryKey: keys.incidents });
      if (data && typeof data.id === 'string') {
        void client.invalidateQueries({ queryKey: keys.incident(data.id) });
        void client.invalidateQueries({ queryKey: keys.postmortem(data.id) });
      }
    });
    source.addEventListener('health', (e) => {
      const data = parse(e);
      if (data && typeof data.flag === 'string') {
        void client.invalidateQueries({ queryKey: keys.health(env, data.flag) });
      }
    });
    return () => {
      stopPolling();
      unwatch?.();
      source.close();
    };
  }, [env, session, api, client]);

  return state;
}
