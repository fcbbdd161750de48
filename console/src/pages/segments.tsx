import { useQueryClient } from '@tanstack/react-query';
import type { Flag, Segment, SegmentInput } from '@vigil/proto';
import { useMemo, useState } from 'react';
import { DiffView } from '../components/diff-view.js';
import { Button, Dialog, Empty, ErrorBanner, Field, Link, Loading } from '../components/ui.js';
import { ApiError, type FieldIssue, seg } from '../lib/api.js';
import { diff } from '../lib/diff.js';
import { issuesAt } from '../lib/issues.js';
import { pathOf } from '../lib/router.js';
import { keys, useFlags, useSegments } from '../queries.js';
import { useApi, useCan } from '../session.js';

/** The flags whose rules use each segment (`inSegment` clauses). */
export function segmentUsers(flags: readonly Flag[]): Map<string, string[]> {
  const users = new Map<string, string[]>();
  for (const flag of flags) {
    for (const rule of flag.rules) {
      for (const clause of rule.clauses) {
        if (clause.op !== 'inSegment') continue;
        for (const v of clause.values) {
          const list = users.get(String(v)) ?? [];
          if (!list.includes(flag.key)) list.push(flag.key);
          users.set(String(v), list);
        }
      }
    }
  }
  return users;
}

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** Segments: who is in them (keys and rules), which flags use them; admins edit and delete. */
export function SegmentsPage({ env }: { env: string }) {
  const segments = useSegments(env);
  const flags = useFlags(env);
  const canAdmin = useCan('admin');
  const [editing, setEditing] = useState<{ segment: SegmentInput; isNew: boolean } | undefined>();
  const users = useMemo(() => segmentUsers(flags.data?.flags ?? []), [flags.data]);
  return (
    <section aria-labelledby="segments-title">
      <div className="page-head">
        <h1 id="segments-title">
          Segments <span className="muted">in {env}</span>
        </h1>
        <Button
          variant="primary"
          onClick={() =>
            setEditing({ segment: { key: '', included: [], excluded: [], rules: [] }, isNew: true })
          }
          disabledReason={canAdmin ? undefined : 'Editing segments needs an admin token'}
          data-testid="new-segment"
        >
          New segment
        </Button>
      </div>
      <ErrorBanner error={segments.error} onRetry={() => void segments.refetch()} />
      {segments.isPending && <Loading />}
      {segments.data && segments.data.length === 0 && (
        <Empty title="No segments yet">
          <p>
            A segment names a set of users (by key, or by rules) that flag rules can target with “is in
            segment”.
          </p>
        </Empty>
      )}
      {segments.data && segments.data.length > 0 && (
        <table className="table" data-testid="segments">
          <caption className="sr-only">Segments</caption>
          <thead>
            <tr>
              <th scope="col">Segment</th>
              <th scope="col">Included</th>
              <th scope="col">Excluded</th>
              <th scope="col">Rules</th>
              <th scope="col">Used by</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {segments.data.map((s) => (
              <tr key={s.key} data-testid="segment-row" data-segment={s.key}>
                <th scope="row">
                  <span className="mono">{s.key}</span>
                  {s.description && <div className="muted">{s.description}</div>}
                </th>
                <td>{s.included.length}</td>
                <td>{s.excluded.length}</td>
                <td>{s.rules.length}</td>
                <td>
                  {(users.get(s.key) ?? []).map((f) => (
                    <Link
                      key={f}
                      className="mono tag"
                      href={pathOf({ name: 'flag', env, key: f, tab: 'edit' })}
                    >
                      {f}
                    </Link>
                  ))}
                  {(users.get(s.key) ?? []).length === 0 && <span className="muted">no flag</span>}
                </td>
                <td>
                  <Button
                    variant="ghost"
                    onClick={() => setEditing({ segment: s, isNew: false })}
                    aria-label={`${canAdmin ? 'Edit' : 'View'} segment ${s.key}`}
                  >
                    {canAdmin ? 'Edit' : 'View'}
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <SegmentEditor
          env={env}
          initial={editing.segment}
          isNew={editing.isNew}
          readOnly={!canAdmin}
          onClose={() => setEditing(undefined)}
        />
      )}
    </section>
  );
}

function SegmentEditor({
  env,
  initial,
  isNew,
  readOnly,
  onClose,
}: {
  env: string;
  initial: SegmentInput;
  isNew: boolean;
  readOnly: boolean;
  onClose: () => void;
}) {
  const api = useApi();
  const client = useQueryClient();
  const [key, setKey] = useState(initial.key);
  const [description, setDescription] = useState(initial.description ?? '');
  const [included, setIncluded] = useState((initial.included ?? []).join('\n'));
  const [excluded, setExcluded] = useState((initial.excluded ?? []).join('\n'));
  const [rulesText, setRulesText] = useState(JSON.stringify(initial.rules ?? [], null, 2));
  const [issues, setIssues] = useState<FieldIssue[]>([]);
  const [error, setError] = useState<unknown>();
  const [confirmDelete, setConfirmDelete] = useState(false);

  let rules: SegmentInput['rules'] | undefined;
  let rulesError: string | undefined;
  try {
    const parsed = JSON.parse(rulesText) as unknown;
    if (!Array.isArray(parsed))
      throw new Error('rules are a list of clause lists: [[{ "attribute", "op", "values" }]]');
    rules = parsed as SegmentInput['rules'];
  } catch (e) {
    rulesError = e instanceof Error ? e.message : String(e);
  }
  const draft: SegmentInput = {
    key,
    description,
    included: lines(included),
    excluded: lines(excluded),
    rules: rules ?? [],
  };
  const base: SegmentInput = {
    key: initial.key,
    description: initial.description ?? '',
    included: initial.included ?? [],
    excluded: initial.excluded ?? [],
    rules: initial.rules ?? [],
  };
  const changes = diff(base, draft);
  const version = (initial as Partial<Segment>).version;

  const save = async () => {
    setIssues([]);
    setError(undefined);
    try {
      await api.send('PUT', `/envs/${seg(env)}/segments/${seg(key)}`, {
        body: draft,
        headers: !isNew && version !== undefined ? { 'if-match': `"${version}"` } : {},
      });
      void client.invalidateQueries({ queryKey: keys.segments(env) });
      onClose();
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) {
        setError(
          new ApiError(
            412,
            e.code,
            isNew
              ? `a segment ${key} already exists`
              : 'Someone else changed this segment since you opened it: close and open it again.',
          ),
        );
      } else if (e instanceof ApiError && e.issues.length) setIssues(e.issues);
      else setError(e);
    }
  };

  const remove = async () => {
    setError(undefined);
    try {
      await api.delete(`/envs/${seg(env)}/segments/${seg(initial.key)}`);
      void client.invalidateQueries({ queryKey: keys.segments(env) });
      onClose();
    } catch (e) {
      setConfirmDelete(false);
      setError(e);
    }
  };

  return (
    <Dialog open title={isNew ? 'New segment' : `Segment ${initial.key}`} onClose={onClose} wide>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <fieldset className="plain" disabled={readOnly}>
          <legend className="sr-only">Segment</legend>
          <div className="grid-2">
            <Field label="Key" issues={issuesAt(issues, 'key')}>
              {(props) => (
                <input
                  {...props}
                  value={key}
                  readOnly={!isNew}
                  required
                  onChange={(e) => setKey(e.target.value)}
                  data-testid="segment-key"
                />
              )}
            </Field>
            <Field label="Description" issues={issuesAt(issues, 'description')}>
              {(props) => (
                <input {...props} value={description} onChange={(e) => setDescription(e.target.value)} />
              )}
            </Field>
            <Field label="Included context keys (one per line)" issues={issuesAt(issues, 'included')}>
              {(props) => (
                <textarea
                  {...props}
                  rows={5}
                  value={included}
                  onChange={(e) => setIncluded(e.target.value)}
                  data-testid="segment-included"
                />
              )}
            </Field>
            <Field label="Excluded context keys (one per line)" issues={issuesAt(issues, 'excluded')}>
              {(props) => (
                <textarea
                  {...props}
                  rows={5}
                  value={excluded}
                  onChange={(e) => setExcluded(e.target.value)}
                />
              )}
            </Field>
          </div>
          <Field
            label="Rules (JSON: any one list of clauses matching puts a context in)"
            hint='e.g. [[{ "attribute": "plan", "op": "in", "values": ["enterprise"] }]]'
            issues={[
              ...issuesAt(issues, 'rules'),
              ...(rulesError ? [{ field: 'rules', message: rulesError }] : []),
            ]}
          >
            {(props) => (
              <textarea
                {...props}
                className="mono"
                rows={6}
                spellCheck={false}
                value={rulesText}
                onChange={(e) => setRulesText(e.target.value)}
              />
            )}
          </Field>
        </fieldset>
        {!isNew && changes.length > 0 && <DiffView changes={changes} />}
        <ErrorBanner error={error} />
        {!readOnly && (
          <div className="row row-end">
            {!isNew &&
              (confirmDelete ? (
                <Button variant="danger" onClick={() => void remove()} data-testid="confirm-delete-segment">
                  Really delete {initial.key}
                </Button>
              ) : (
                <Button variant="ghost" onClick={() => setConfirmDelete(true)}>
                  Delete…
                </Button>
              ))}
            <Button onClick={onClose}>Cancel</Button>
            <Button
              type="submit"
              variant="primary"
              disabled={rulesError !== undefined || changes.length === 0 || key === ''}
              data-testid="save-segment"
            >
              {isNew ? 'Create' : 'Save'}
            </Button>
          </div>
        )}
      </form>
    </Dialog>
  );
}
