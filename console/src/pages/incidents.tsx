import { useQueryClient } from '@tanstack/react-query';
import type { Incident } from '@vigil/proto';
import { Children, createElement, type ReactNode, useEffect, useMemo, useState } from 'react';
import { DetectionCohorts } from '../components/detection-cohorts.js';
import { Badge, Button, Empty, ErrorBanner, Field, Link, Loading } from '../components/ui.js';
import { seg } from '../lib/api.js';
import { ago, duration, when } from '../lib/format.js';
import { type Block, type Inline, parseMarkdown } from '../lib/markdown.js';
import { pathOf } from '../lib/router.js';
import { keys, useIncident, useIncidents, usePostmortem } from '../queries.js';
import { useApi, useCan } from '../session.js';

const STATUS_TONE: Record<Incident['status'], string> = {
  open: 'danger',
  acknowledged: 'warn',
  resolved: 'ok',
};
const SEVERITY_TONE: Record<string, string> = { sev1: 'danger', sev2: 'warn', sev3: 'info' };

export function IncidentsPage({ env }: { env: string }) {
  const incidents = useIncidents();
  const [status, setStatus] = useState<'' | Incident['status']>('');
  const [severity, setSeverity] = useState('');
  const [onlyEnv, setOnlyEnv] = useState(false);
  const shown = useMemo(
    () =>
      (incidents.data ?? []).filter(
        (i) =>
          (!status || i.status === status) &&
          (!severity || i.severity === severity) &&
          (!onlyEnv || i.env === env),
      ),
    [incidents.data, status, severity, onlyEnv, env],
  );
  return (
    <section aria-labelledby="incidents-title">
      <h1 id="incidents-title">Incidents</h1>
      <ErrorBanner error={incidents.error} onRetry={() => void incidents.refetch()} />
      <div className="filters">
        <label className="field-inline">
          <span>Status</span>
          <select
            value={status}
            onChange={(e) => setStatus(e.target.value as typeof status)}
            data-testid="incident-status-filter"
          >
            <option value="">any</option>
            <option value="open">open</option>
            <option value="acknowledged">acknowledged</option>
            <option value="resolved">resolved</option>
          </select>
        </label>
        <label className="field-inline">
          <span>Severity</span>
          <select value={severity} onChange={(e) => setSeverity(e.target.value)}>
            <option value="">any</option>
            <option value="sev1">sev1</option>
            <option value="sev2">sev2</option>
            <option value="sev3">sev3</option>
          </select>
        </label>
        <label className="check">
          <input type="checkbox" checked={onlyEnv} onChange={(e) => setOnlyEnv(e.target.checked)} /> only{' '}
          {env}
        </label>
      </div>
      {incidents.isPending && <Loading />}
      {incidents.data && incidents.data.length === 0 && (
        <Empty title="No incidents">
          <p>
            When the guardian finds a flag hurting its cohort, it opens an incident here (and kills the flag
            if its policy says so).
          </p>
        </Empty>
      )}
      {incidents.data && incidents.data.length > 0 && shown.length === 0 && (
        <Empty title="No incident matches this filter" />
      )}
      {shown.length > 0 && (
        <table className="table" data-testid="incidents">
          <caption className="sr-only">Incidents, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Incident</th>
              <th scope="col">Status</th>
              <th scope="col">Severity</th>
              <th scope="col">Flag</th>
              <th scope="col">Detected</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((i) => (
              <tr key={i.id} data-testid="incident-row" data-incident={i.id} data-status={i.status}>
                <td>
                  <Link href={pathOf({ name: 'incident', id: i.id })}>{i.title}</Link>
                </td>
                <td>
                  <Badge tone={STATUS_TONE[i.status]}>{i.status}</Badge>
                </td>
                <td>
                  <Badge tone={SEVERITY_TONE[i.severity] ?? 'muted'}>{i.severity}</Badge>
                </td>
                <td className="mono">
                  <Link href={pathOf({ name: 'flag', env: i.env, key: i.flag, tab: 'edit' })}>{i.flag}</Link>{' '}
                  <span className="muted">({i.env})</span>
                </td>
                <td>{ago(i.detectedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function IncidentPage({ id }: { id: string }) {
  const incident = useIncident(id);
  if (incident.isPending) return <Loading />;
  if (incident.error) return <ErrorBanner error={incident.error} onRetry={() => void incident.refetch()} />;
  const i = incident.data;
  return (
    <article aria-labelledby="incident-title">
      <p className="crumbs">
        <Link href={pathOf({ name: 'incidents' })}>Incidents</Link> /
      </p>
      <div className="page-head">
        <div>
          <h1 id="incident-title">{i.title}</h1>
          <p>
            <Badge tone={STATUS_TONE[i.status]}>
              <span data-testid="incident-status">{i.status}</span>
            </Badge>{' '}
            <Badge tone={SEVERITY_TONE[i.severity] ?? 'muted'}>{i.severity}</Badge>{' '}
            <span className="muted">
              flag{' '}
              <Link
                className="mono"
                href={pathOf({ name: 'flag', env: i.env, key: i.flag, tab: 'evidence' })}
              >
                {i.flag}
              </Link>{' '}
              version {i.flagVersion} in {i.env} · {i.killed ? 'killed' : 'not killed'}
            </span>
          </p>
        </div>
      </div>
      {i.summary && <p>{i.summary}</p>}
      <div className="two-col">
        <div>
          <section className="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">Timeline</h2>
            <ol className="incident-timeline" data-testid="incident-timeline">
              {i.timeline.map((t, n) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: the timeline only grows at its end, and entries may share a time and kind
                <li key={n} className={`tl tl-${t.kind}`} data-kind={t.kind}>
                  <span className="mono tl-at">{when(t.at)}</span>{' '}
                  <Badge tone="muted">{t.kind.replace('_', ' ')}</Badge> {t.message}
                  {t.actor && <span className="muted"> — {t.actor}</span>}
                </li>
              ))}
            </ol>
            <dl className="kv">
              <dt>Time to detect</dt>
              <dd>{i.changedAt ? duration(Date.parse(i.detectedAt) - Date.parse(i.changedAt)) : '—'}</dd>
              <dt>Time to mitigate</dt>
              <dd>{i.mitigatedAt ? duration(Date.parse(i.mitigatedAt) - Date.parse(i.detectedAt)) : '—'}</dd>
              <dt>Acknowledged</dt>
              <dd>{i.acknowledgedAt ? `${ago(i.acknowledgedAt)} by ${i.acknowledgedBy ?? '—'}` : '—'}</dd>
              <dt>Resolved</dt>
              <dd>{i.resolvedAt ? `${ago(i.resolvedAt)} by ${i.resolvedBy ?? '—'}` : '—'}</dd>
            </dl>
          </section>
          {i.cohorts.length > 0 && (
            <DetectionCohorts
              cohorts={i.cohorts}
              controlVariant={i.controlVariant}
              caption="Cohorts at detection"
            />
          )}
        </div>
        <IncidentActions incident={i} />
      </div>
      <Postmortem id={i.id} />
    </article>
  );
}

function IncidentActions({ incident }: { incident: Incident }) {
  const api = useApi();
  const client = useQueryClient();
  const canOps = useCan('ops');
  const [note, setNote] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  if (incident.status === 'resolved') {
    return (
      <aside className="card">
        <h2>Resolved</h2>
        <p>This incident is closed.</p>
      </aside>
    );
  }
  const act = async (action: 'ack' | 'resolve') => {
    setBusy(true);
    setError(undefined);
    try {
      const updated = await api.post<Incident>(
        `/incidents/${seg(incident.id)}/${action}`,
        note.trim() ? { note: note.trim() } : {},
      );
      client.setQueryData(keys.incident(incident.id), updated);
      void client.invalidateQueries({ queryKey: keys.incidents });
      void client.invalidateQueries({ queryKey: keys.postmortem(incident.id) });
      setNote('');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const why = canOps ? undefined : 'Acknowledging and resolving need an ops or admin token';
  return (
    <aside className="card" aria-labelledby="respond-title">
      <h2 id="respond-title">Respond</h2>
      <Field label="Note (optional, added to the timeline)">
        {(props) => (
          <textarea
            {...props}
            rows={3}
            value={note}
            onChange={(e) => setNote(e.target.value)}
            disabled={!canOps}
            data-testid="incident-note"
          />
        )}
      </Field>
      <ErrorBanner error={error} />
      <div className="row">
        {incident.status === 'open' && (
          <Button onClick={() => void act('ack')} disabled={busy} disabledReason={why} data-testid="ack">
            Acknowledge
          </Button>
        )}
        <Button
          variant="primary"
          onClick={() => void act('resolve')}
          disabled={busy}
          disabledReason={why}
          data-testid="resolve"
        >
          Resolve
        </Button>
      </div>
    </aside>
  );
}

function Postmortem({ id }: { id: string }) {
  const postmortem = usePostmortem(id);
  const href = useMemo(
    () =>
      postmortem.data
        ? URL.createObjectURL(new Blob([postmortem.data], { type: 'text/markdown' }))
        : undefined,
    [postmortem.data],
  );
  useEffect(
    () => () => {
      if (href) URL.revokeObjectURL(href);
    },
    [href],
  );
  return (
    <section className="card" aria-labelledby="postmortem-title">
      <div className="page-head">
        <h2 id="postmortem-title">Postmortem draft</h2>
        {href && (
          <a
            className="btn btn-secondary"
            href={href}
            download={`postmortem-${id}.md`}
            data-testid="postmortem-download"
          >
            Download Markdown
          </a>
        )}
      </div>
      <ErrorBanner error={postmortem.error} />
      {postmortem.data && (
        <div className="markdown" data-testid="postmortem">
          {renderBlocks(parseMarkdown(postmortem.data))}
        </div>
      )}
    </section>
  );
}

/** One inline span; the document is rendered once per fetch, so its spans carry positional keys (Children.toArray). */
function inline(c: Inline): ReactNode {
  switch (c.kind) {
    case 'text':
      return c.text;
    case 'strong':
      return <strong>{c.text}</strong>;
    case 'em':
      return <em>{c.text}</em>;
    case 'code':
      return <code>{c.text}</code>;
    case 'link':
      return (
        <a href={c.href} rel="noreferrer">
          {c.text}
        </a>
      );
    default:
      return null;
  }
}

function renderInline(content: Inline[]): ReactNode {
  return Children.toArray(content.map(inline));
}

const listItem = (content: Inline[]) => <li>{renderInline(content)}</li>;
const headCell = (content: Inline[]) => <th scope="col">{renderInline(content)}</th>;
const bodyCell = (content: Inline[]) => <td>{renderInline(content)}</td>;
const tableRow = (cells: Inline[][]) => <tr>{Children.toArray(cells.map(bodyCell))}</tr>;

function block(b: Block): ReactNode {
  switch (b.kind) {
    case 'heading':
      // The page's own headings are h1/h2: the document's start at h3.
      return createElement(`h${Math.min(6, b.level + 2)}`, null, renderInline(b.content));
    case 'paragraph':
      return <p>{renderInline(b.content)}</p>;
    case 'quote':
      return <blockquote>{renderInline(b.content)}</blockquote>;
    case 'list': {
      const items = Children.toArray(b.items.map(listItem));
      return b.ordered ? <ol>{items}</ol> : <ul>{items}</ul>;
    }
    case 'table':
      return (
        <table className="table">
          <thead>
            <tr>{Children.toArray(b.head.map(headCell))}</tr>
          </thead>
          <tbody>{Children.toArray(b.rows.map(tableRow))}</tbody>
        </table>
      );
    case 'code':
      return (
        <pre>
          <code>{b.text}</code>
        </pre>
      );
    case 'rule':
      return <hr />;
    default:
      return null;
  }
}

function renderBlocks(blocks: Block[]): ReactNode {
  return Children.toArray(blocks.map(block));
}
