import type { AuditEntry } from '@vigil/proto';
import { useMemo, useState } from 'react';
import { DiffView } from '../components/diff-view.js';
import { Badge, Empty, ErrorBanner, Link, Loading } from '../components/ui.js';
import { diff } from '../lib/diff.js';
import { when } from '../lib/format.js';
import { pathOf, queryOf, useLocation } from '../lib/router.js';
import { useAudit } from '../queries.js';

/** Every write in the environment: who, when, why, and what changed (before → after). */
export function AuditPage({ env }: { env: string }) {
  const location = useLocation();
  const [target, setTarget] = useState(queryOf(location).get('flag') ?? '');
  const [applied, setApplied] = useState(target);
  const [actor, setActor] = useState('');
  const audit = useAudit(env, applied);
  const actors = useMemo(() => [...new Set((audit.data ?? []).map((e) => e.actor))].sort(), [audit.data]);
  const shown = (audit.data ?? []).filter((e) => !actor || e.actor === actor);
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">
        Audit log <span className="muted">of {env}</span>
      </h1>
      <search>
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            setApplied(target.trim());
          }}
        >
          <label className="field-inline">
            <span>Flag or segment</span>
            <input
              value={target}
              onChange={(e) => setTarget(e.target.value)}
              onBlur={() => setApplied(target.trim())}
              placeholder="any"
              data-testid="audit-target"
            />
          </label>
          <label className="field-inline">
            <span>Actor</span>
            <select value={actor} onChange={(e) => setActor(e.target.value)} data-testid="audit-actor">
              <option value="">anyone</option>
              {actors.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          </label>
        </form>
      </search>
      <ErrorBanner error={audit.error} onRetry={() => void audit.refetch()} />
      {audit.isPending && <Loading />}
      {audit.data && shown.length === 0 && <Empty title="No writes recorded for this filter" />}
      <ol className="audit" data-testid="audit">
        {shown.map((e) => (
          <AuditItem key={e.id} env={env} entry={e} />
        ))}
      </ol>
    </section>
  );
}

function AuditItem({ env, entry }: { env: string; entry: AuditEntry }) {
  const changes = useMemo(() => diff(entry.before ?? {}, entry.after ?? {}), [entry]);
  const isFlag = entry.action.startsWith('flag.');
  return (
    <li
      className="card audit-entry"
      data-testid="audit-entry"
      data-action={entry.action}
      data-target={entry.target}
    >
      <div className="audit-head">
        <Badge
          tone={entry.action === 'flag.kill' ? 'danger' : entry.action === 'flag.revive' ? 'ok' : 'info'}
        >
          {entry.action}
        </Badge>{' '}
        {isFlag ? (
          <Link className="mono" href={pathOf({ name: 'flag', env, key: entry.target, tab: 'edit' })}>
            {entry.target}
          </Link>
        ) : (
          <span className="mono">{entry.target}</span>
        )}{' '}
        by <strong data-testid="audit-actor-name">{entry.actor}</strong>{' '}
        <span className="muted">{when(entry.at)}</span>
        {entry.revision !== undefined && <span className="muted"> · revision {entry.revision}</span>}
      </div>
      {entry.reason && <p className="audit-reason">“{entry.reason}”</p>}
      {changes.length > 0 && (
        <details>
          <summary>
            {changes.length} change{changes.length === 1 ? '' : 's'}
          </summary>
          <DiffView changes={changes} />
        </details>
      )}
    </li>
  );
}
