import type { Flag } from '@vigil/proto';
import { useDeferredValue, useEffect, useMemo, useRef, useState } from 'react';
import { Badge, Button, Empty, ErrorBanner, Link, Loading } from '../components/ui.js';
import {
  describeServing,
  FLAG_STATES,
  type FlagFilter,
  type FlagState,
  filterFlags,
  flagStates,
} from '../lib/flag-model.js';
import { navigate, pathOf, queryOf, useLocation } from '../lib/router.js';
import { useFlags, useIncidents } from '../queries.js';
import { useCan } from '../session.js';

/** Rows are a fixed height, so the list renders only the rows in view (5,000 flags stay fast). */
export const ROW_HEIGHT = 56;
const OVERSCAN = 8;

export const STATE_TONE: Record<FlagState, string> = {
  killed: 'danger',
  disabled: 'muted',
  unhealthy: 'warn',
  'rolling-out': 'info',
  guarded: 'ok',
  on: 'ok',
};

export const STATE_LABEL: Record<FlagState, string> = {
  killed: 'killed',
  disabled: 'disabled',
  unhealthy: 'unhealthy',
  'rolling-out': 'rolling out',
  guarded: 'guarded',
  on: 'on',
};

/** The keys of flags with an open or acknowledged incident in `env`: the guardian found them unhealthy. */
export function useUnhealthy(env: string): Set<string> {
  const incidents = useIncidents();
  return useMemo(
    () =>
      new Set(
        (incidents.data ?? []).filter((i) => i.env === env && i.status !== 'resolved').map((i) => i.flag),
      ),
    [incidents.data, env],
  );
}

export function FlagsPage({ env }: { env: string }) {
  const flags = useFlags(env);
  const unhealthy = useUnhealthy(env);
  const canAdmin = useCan('admin');
  const location = useLocation();
  const params = queryOf(location);
  const [filter, setFilter] = useState<FlagFilter>({
    query: params.get('q') ?? '',
    tag: params.get('tag') ?? '',
    state: (FLAG_STATES as readonly string[]).includes(params.get('state') ?? '')
      ? (params.get('state') as FlagState)
      : '',
  });
  const deferred = useDeferredValue(filter);

  // The filter lives in the URL too, so a filtered list can be shared and survives a reload.
  useEffect(() => {
    const q = new URLSearchParams();
    if (filter.query) q.set('q', filter.query);
    if (filter.tag) q.set('tag', filter.tag);
    if (filter.state) q.set('state', filter.state);
    const s = q.toString();
    navigate(`${pathOf({ name: 'flags', env })}${s ? `?${s}` : ''}`, { replace: true });
  }, [filter, env]);

  const all = flags.data?.flags ?? [];
  const tags = useMemo(() => [...new Set(all.flatMap((f) => f.tags))].sort(), [all]);
  const shown = useMemo(() => filterFlags(all, deferred, unhealthy), [all, deferred, unhealthy]);

  return (
    <section aria-labelledby="flags-title">
      <div className="page-head">
        <h1 id="flags-title">
          Flags <span className="muted">in {env}</span>
        </h1>
        <Button
          variant="primary"
          onClick={() => navigate(pathOf({ name: 'new-flag', env }))}
          disabledReason={canAdmin ? undefined : 'Creating flags needs an admin token'}
          data-testid="new-flag"
        >
          New flag
        </Button>
      </div>
      <ErrorBanner error={flags.error} onRetry={() => void flags.refetch()} />
      <search className="filters">
        <label className="field-inline">
          <span>Search</span>
          <input
            type="search"
            placeholder="key, description, tag, owner"
            value={filter.query}
            onChange={(e) => setFilter({ ...filter, query: e.target.value })}
            data-testid="flag-search"
          />
        </label>
        <label className="field-inline">
          <span>Tag</span>
          <select
            value={filter.tag}
            onChange={(e) => setFilter({ ...filter, tag: e.target.value })}
            data-testid="tag-filter"
          >
            <option value="">any</option>
            {tags.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label className="field-inline">
          <span>State</span>
          <select
            value={filter.state}
            onChange={(e) => setFilter({ ...filter, state: e.target.value as FlagState | '' })}
            data-testid="state-filter"
          >
            <option value="">any</option>
            {FLAG_STATES.map((s) => (
              <option key={s} value={s}>
                {STATE_LABEL[s]}
              </option>
            ))}
          </select>
        </label>
        <p className="muted count" aria-live="polite" data-testid="flag-count">
          {flags.data ? `${shown.length} of ${all.length} flags` : ''}
        </p>
      </search>
      {flags.isPending && <Loading />}
      {flags.data && all.length === 0 && (
        <Empty title="No flags yet">
          {canAdmin ? (
            <p>
              <Link href={pathOf({ name: 'new-flag', env })}>Create one</Link> — it starts disabled, serving
              its off variant, until you enable it.
            </p>
          ) : (
            <p>An admin creates flags; they will show here as soon as they exist.</p>
          )}
        </Empty>
      )}
      {flags.data && all.length > 0 && shown.length === 0 && (
        <Empty title="No flag matches this filter">
          <Button onClick={() => setFilter({ query: '', tag: '', state: '' })}>Clear the filter</Button>
        </Empty>
      )}
      {shown.length > 0 && <FlagRows env={env} flags={shown} unhealthy={unhealthy} />}
    </section>
  );
}

function FlagRows({ env, flags, unhealthy }: { env: string; flags: Flag[]; unhealthy: Set<string> }) {
  const ref = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setHeight(el.clientHeight));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(flags.length, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  const rows = flags.slice(first, last);
  return (
    <div
      className="flag-list"
      ref={ref}
      onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
      data-testid="flag-list"
    >
      <ul style={{ height: flags.length * ROW_HEIGHT }} aria-label={`Flags in ${env}`}>
        {rows.map((flag, i) => {
          const states = flagStates(flag, unhealthy.has(flag.key));
          return (
            <li
              key={flag.key}
              className="flag-row"
              style={{ top: (first + i) * ROW_HEIGHT, height: ROW_HEIGHT }}
              aria-setsize={flags.length}
              aria-posinset={first + i + 1}
              data-testid="flag-row"
              data-flag={flag.key}
              data-state={states[0]}
            >
              <div className="flag-row-main">
                <Link href={pathOf({ name: 'flag', env, key: flag.key, tab: 'edit' })} className="flag-key">
                  {flag.key}
                </Link>
                <span className="flag-desc muted">{flag.description}</span>
              </div>
              <div className="flag-row-states">
                {states.map((s) => (
                  <Badge key={s} tone={STATE_TONE[s]}>
                    {STATE_LABEL[s]}
                  </Badge>
                ))}
              </div>
              <div className="flag-row-serving" data-testid="serving">
                <span className="sr-only">Serving now: </span>
                {describeServing(flag)}
              </div>
              <div className="flag-row-tags">
                {flag.tags.map((t) => (
                  <span key={t} className="tag">
                    {t}
                  </span>
                ))}
              </div>
            </li>
          );
        })}
      </ul>
    </div>
  );
}
