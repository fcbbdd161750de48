import { useSyncExternalStore } from 'react';

// A router of our own: the history API and a handful of path patterns, no dependency.

const listeners = new Set<() => void>();

function emit(): void {
  for (const l of listeners) l();
}

if (typeof window !== 'undefined') window.addEventListener('popstate', emit);

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const current = () => window.location.pathname + window.location.search;

/** The current path with its query, re-rendering on navigation. */
export function useLocation(): string {
  return useSyncExternalStore(subscribe, current, () => '/');
}

/** Goes to `to` (a path with an optional query) without reloading. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === current()) return;
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  emit();
}

/** A route: its name and its path parameters. */
export type Route =
  | { name: 'flags'; env: string }
  | { name: 'new-flag'; env: string }
  | { name: 'flag'; env: string; key: string; tab: 'edit' | 'rollout' | 'evidence' }
  | { name: 'incidents' }
  | { name: 'incident'; id: string }
  | { name: 'audit'; env: string }
  | { name: 'segments'; env: string }
  | { name: 'tokens' }
  | { name: 'home' }
  | { name: 'not-found'; path: string };

const decode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** The route a path names. */
export function matchRoute(location: string): Route {
  const path = location.split('?')[0]!.replace(/\/+$/, '') || '/';
  const parts = path.split('/').slice(1).map(decode);
  const [a, b, c, d] = parts;
  if (path === '/') return { name: 'home' };
  if (a === 'flags' && b && parts.length === 2) return { name: 'flags', env: b };
  if (a === 'flags' && b && c === '_new' && parts.length === 3) return { name: 'new-flag', env: b };
  if (a === 'flags' && b && c && parts.length === 3) return { name: 'flag', env: b, key: c, tab: 'edit' };
  if (a === 'flags' && b && c && (d === 'rollout' || d === 'evidence') && parts.length === 4)
    return { name: 'flag', env: b, key: c, tab: d };
  if (a === 'incidents' && parts.length === 1) return { name: 'incidents' };
  if (a === 'incidents' && b && parts.length === 2) return { name: 'incident', id: b };
  if (a === 'audit' && b && parts.length === 2) return { name: 'audit', env: b };
  if (a === 'segments' && b && parts.length === 2) return { name: 'segments', env: b };
  if (a === 'tokens' && parts.length === 1) return { name: 'tokens' };
  return { name: 'not-found', path };
}

/** The path of a route (the inverse of {@link matchRoute}). */
export function pathOf(route: Route): string {
  const e = encodeURIComponent;
  switch (route.name) {
    case 'flags':
      return `/flags/${e(route.env)}`;
    case 'new-flag':
      return `/flags/${e(route.env)}/_new`;
    case 'flag':
      return `/flags/${e(route.env)}/${e(route.key)}${route.tab === 'edit' ? '' : `/${route.tab}`}`;
    case 'incidents':
      return '/incidents';
    case 'incident':
      return `/incidents/${e(route.id)}`;
    case 'audit':
      return `/audit/${e(route.env)}`;
    case 'segments':
      return `/segments/${e(route.env)}`;
    case 'tokens':
      return '/tokens';
    case 'home':
      return '/';
    case 'not-found':
      return route.path;
  }
}

/** The query parameters of the current location. */
export function queryOf(location: string): URLSearchParams {
  const i = location.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : location.slice(i + 1));
}
