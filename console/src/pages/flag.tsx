import { useQueryClient } from '@tanstack/react-query';
import type { Flag, FlagInput } from '@vigil/proto';
import { lazy, Suspense, useEffect, useMemo, useState } from 'react';
import { DiffView } from '../components/diff-view.js';
import { FlagForm } from '../components/flag-form.js';
import {
  Badge,
  Button,
  Dialog,
  Empty,
  ErrorBanner,
  Field,
  Link,
  Loading,
  TabLinks,
} from '../components/ui.js';
import { ApiError, type FieldIssue, seg } from '../lib/api.js';
import { type Change, diff } from '../lib/diff.js';
import { describeServe, describeServing, editable, flagStates, newBooleanFlag } from '../lib/flag-model.js';
import { ago } from '../lib/format.js';
import { navigate, pathOf } from '../lib/router.js';
import { fetchFlag, keys, useFlag, useFlags, useSegments } from '../queries.js';
import { useApi, useCan } from '../session.js';
import { STATE_LABEL, STATE_TONE, useUnhealthy } from './flags.js';
import { RolloutPage, useNow } from './rollout.js';
import { TestPanel } from './test-panel.js';

// uPlot is only needed on the evidence page: it loads with it.
const EvidencePage = lazy(() => import('./evidence.js').then((m) => ({ default: m.EvidencePage })));

export function FlagPage({
  env,
  flagKey,
  tab,
}: {
  env: string;
  flagKey: string | undefined;
  tab: 'edit' | 'rollout' | 'evidence';
}) {
  if (flagKey === undefined) return <FlagEditor env={env} loaded={undefined} />;
  return <ExistingFlag env={env} flagKey={flagKey} tab={tab} />;
}

function ExistingFlag({
  env,
  flagKey,
  tab,
}: {
  env: string;
  flagKey: string;
  tab: 'edit' | 'rollout' | 'evidence';
}) {
  const query = useFlag(env, flagKey);
  const unhealthy = useUnhealthy(env);
  if (query.isPending) return <Loading />;
  if (query.error) {
    if (query.error instanceof ApiError && query.error.status === 404) {
      return (
        <Empty title={`No flag ${flagKey} in ${env}`}>
          <p>
            It may have been deleted, or it exists in another environment.{' '}
            <Link href={pathOf({ name: 'flags', env })}>Back to the flags</Link>.
          </p>
        </Empty>
      );
    }
    return <ErrorBanner error={query.error} onRetry={() => void query.refetch()} />;
  }
  const { flag } = query.data;
  const states = flagStates(flag, unhealthy.has(flag.key));
  const base = (t: 'edit' | 'rollout' | 'evidence') => pathOf({ name: 'flag', env, key: flag.key, tab: t });
  return (
    <article aria-labelledby="flag-title">
      <p className="crumbs">
        <Link href={pathOf({ name: 'flags', env })}>Flags in {env}</Link> /
      </p>
      <div className="page-head">
        <div>
          <h1 id="flag-title" className="mono">
            {flag.key}
          </h1>
          <p className="flag-states" data-testid="flag-states">
            {states.map((s) => (
              <Badge key={s} tone={STATE_TONE[s]}>
                {STATE_LABEL[s]}
              </Badge>
            ))}{' '}
            <span className="muted">
              Serving now: <strong data-testid="serving-now">{describeServing(flag)}</strong> · version{' '}
              {flag.version}
            </span>
          </p>
        </div>
        <KillSwitch env={env} flag={flag} />
      </div>
      {flag.killed && (
        <div className="banner banner-danger" role="status" data-testid="killed-banner">
          <strong>Killed</strong> <Ago iso={flag.killedAt} /> by {flag.killedBy ?? 'someone'}:{' '}
          {flag.killReason ?? 'no reason given'}. Everyone gets <code>{flag.offVariant}</code>.
        </div>
      )}
      <TabLinks
        current={tab}
        tabs={[
          { id: 'edit', label: 'Configuration', href: base('edit') },
          { id: 'rollout', label: 'Rollout', href: base('rollout') },
          { id: 'evidence', label: 'Guardian evidence', href: base('evidence') },
        ]}
      />
      {tab === 'edit' && (
        <div className="two-col">
          <FlagEditor env={env} loaded={query.data} />
          <TestPanel env={env} flagKey={flag.key} />
        </div>
      )}
      {tab === 'rollout' && <RolloutPage env={env} flag={flag} version={query.data.version} />}
      {tab === 'evidence' && (
        <Suspense fallback={<Loading label="Loading the charts…" />}>
          <EvidencePage env={env} flag={flag} />
        </Suspense>
      )}
    </article>
  );
}

/** The kill switch: one prominent button, a required reason, a confirmation; revive says what comes back. */
function KillSwitch({ env, flag }: { env: string; flag: Flag }) {
  const api = useApi();
  const client = useQueryClient();
  const canOps = useCan('ops');
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const action = flag.killed ? 'revive' : 'kill';
  const offValue = flag.variants.find((v) => v.key === flag.offVariant)?.value;
  const servedAfterRevive = flag.enabled
    ? (flag.rules.length ? `${flag.rules.length} rule${flag.rules.length === 1 ? '' : 's'}, else ` : '') +
      describeServe(flag.fallthrough)
    : `${flag.offVariant} (the flag is disabled)`;

  const submit = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const updated = await api.post<Flag>(`/envs/${seg(env)}/flags/${seg(flag.key)}/${action}`, {
        reason: reason.trim(),
      });
      client.setQueryData(keys.flag(env, flag.key), { flag: updated, version: updated.version });
      void client.invalidateQueries({ queryKey: keys.flags(env) });
      void client.invalidateQueries({ queryKey: keys.audit(env) });
      setOpen(false);
      setReason('');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <Button
        variant={flag.killed ? 'primary' : 'danger'}
        className="btn-big"
        onClick={() => setOpen(true)}
        disabledReason={canOps ? undefined : `The ${action} switch needs an ops or admin token`}
        data-testid={action === 'kill' ? 'kill' : 'revive'}
      >
        {flag.killed ? 'Revive' : 'Kill switch'}
      </Button>
      <Dialog
        open={open}
        title={flag.killed ? `Revive ${flag.key}?` : `Kill ${flag.key}?`}
        onClose={() => setOpen(false)}
      >
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
        >
          {flag.killed ? (
            <p>
              Reviving serves again what the flag served before the kill:{' '}
              <strong data-testid="revive-serves">{servedAfterRevive}</strong>.
            </p>
          ) : (
            <p>
              Everyone in <strong>{env}</strong> gets the off variant <code>{flag.offVariant}</code>
              {offValue !== undefined && (
                <>
                  {' '}
                  (<code>{JSON.stringify(offValue)}</code>)
                </>
              )}{' '}
              within a second, whatever the rules say. The SDKs are told at once.
            </p>
          )}
          <Field label="Reason (required, recorded in the audit log)">
            {(props) => (
              <textarea
                {...props}
                required
                rows={3}
                value={reason}
                onChange={(e) => setReason(e.target.value)}
                data-testid="kill-reason"
              />
            )}
          </Field>
          <ErrorBanner error={error} />
          <div className="row row-end">
            <Button onClick={() => setOpen(false)}>Cancel</Button>
            <Button
              type="submit"
              variant={flag.killed ? 'primary' : 'danger'}
              disabled={busy || reason.trim() === ''}
              data-testid="confirm-kill"
            >
              {busy ? 'Working…' : flag.killed ? `Revive ${flag.key}` : `Kill ${flag.key}`}
            </Button>
          </div>
        </form>
      </Dialog>
    </>
  );
}

type Mode = 'form' | 'json';

/** The editor: a form over the model and a JSON editor of the whole flag, a diff before save, 400s on the fields, 412 reload. */
function FlagEditor({ env, loaded }: { env: string; loaded: { flag: Flag; version: number } | undefined }) {
  const api = useApi();
  const client = useQueryClient();
  const canAdmin = useCan('admin');
  const isNew = loaded === undefined;
  const [base, setBase] = useState<{ flag: FlagInput; version: number | undefined }>(() =>
    loaded
      ? { flag: editable(loaded.flag), version: loaded.version }
      : { flag: newBooleanFlag(''), version: undefined },
  );
  const [draft, setDraft] = useState<FlagInput>(base.flag);
  const [mode, setMode] = useState<Mode>('form');
  const [jsonText, setJsonText] = useState('');
  const [jsonError, setJsonError] = useState<string | undefined>();
  const [issues, setIssues] = useState<FieldIssue[]>([]);
  const [localIssues, setLocalIssues] = useState<FieldIssue[]>([]);
  const [reviewing, setReviewing] = useState(false);
  const [reason, setReason] = useState('');
  const [saveError, setSaveError] = useState<unknown>();
  const [conflict, setConflict] = useState(false);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const flags = useFlags(env);
  const segments = useSegments(env);

  const changes: Change[] = useMemo(() => diff(base.flag, draft), [base.flag, draft]);
  const dirty = changes.length > 0;
  // The server changed the flag under an unsaved edit: say so now rather than at save time.
  const stale = loaded !== undefined && base.version !== undefined && loaded.version !== base.version;
  useEffect(() => {
    if (loaded && !dirty && stale) {
      const next = { flag: editable(loaded.flag), version: loaded.version };
      setBase(next);
      setDraft(next.flag);
    }
  }, [loaded, dirty, stale]);

  // Validate as the server does, with the same schemas (@vigil/proto, loaded with the editor): issues
  // show on the fields while typing; the server's 400 still has the last word (cross-flag checks).
  useEffect(() => {
    let live = true;
    const timer = setTimeout(() => {
      import('@vigil/proto').then(
        ({ validateFlag }) => {
          if (!live) return;
          const result = validateFlag({ ...draft, version: 0 });
          setLocalIssues(result.ok ? [] : result.issues);
        },
        () => live && setLocalIssues([]),
      );
    }, 250);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [draft]);

  const shownIssues = issues.length > 0 ? issues : localIssues;

  const update = (next: FlagInput) => {
    setDraft(next);
    setSaved(false);
    if (issues.length) setIssues([]);
  };

  const switchMode = (m: Mode) => {
    if (m === 'json') {
      setJsonText(JSON.stringify(draft, null, 2));
      setJsonError(undefined);
    }
    if (m === 'form' && jsonError) return;
    setMode(m);
  };

  const reload = async () => {
    if (!loaded) return;
    const fresh = await fetchFlag(api, env, loaded.flag.key);
    client.setQueryData(keys.flag(env, fresh.flag.key), fresh);
    const next = { flag: editable(fresh.flag), version: fresh.version };
    setBase(next);
    setDraft(next.flag);
    setJsonText(JSON.stringify(next.flag, null, 2));
    setConflict(false);
    setIssues([]);
    setSaveError(undefined);
  };

  const save = async () => {
    setBusy(true);
    setSaveError(undefined);
    try {
      const headers: Record<string, string> = {};
      if (reason.trim()) headers['x-vigil-reason'] = reason.trim();
      if (!isNew && base.version !== undefined) headers['if-match'] = `"${base.version}"`;
      const r = isNew
        ? await api.send<Flag>('POST', `/envs/${seg(env)}/flags`, { body: draft, headers })
        : await api.send<Flag>('PUT', `/envs/${seg(env)}/flags/${seg(draft.key)}`, { body: draft, headers });
      const stored = r.body;
      client.setQueryData(keys.flag(env, stored.key), { flag: stored, version: stored.version });
      void client.invalidateQueries({ queryKey: keys.flags(env) });
      void client.invalidateQueries({ queryKey: keys.audit(env) });
      setReviewing(false);
      setReason('');
      setIssues([]);
      if (isNew) {
        navigate(pathOf({ name: 'flag', env, key: stored.key, tab: 'edit' }));
        return;
      }
      const next = { flag: editable(stored), version: stored.version };
      setBase(next);
      setDraft(next.flag);
      setSaved(true);
    } catch (e) {
      setReviewing(false);
      if (e instanceof ApiError && e.status === 412) setConflict(true);
      else if (e instanceof ApiError && e.status === 409 && isNew)
        setIssues([{ field: 'key', message: e.message }]);
      else if (e instanceof ApiError && e.issues.length > 0) setIssues(e.issues);
      else setSaveError(e);
    } finally {
      setBusy(false);
    }
  };

  const readOnly = !canAdmin;
  return (
    <section className="editor" aria-label="Flag configuration">
      {isNew && <h1>New flag in {env}</h1>}
      {readOnly && (
        <p className="banner banner-info" role="status" data-testid="read-only">
          Read-only: editing flags needs an admin token.
        </p>
      )}
      {conflict && (
        <div className="banner banner-warn" role="alert" data-testid="conflict">
          <strong>Someone else changed this flag since you opened it</strong> (you edited version{' '}
          {base.version}
          {loaded ? `; it is now version ${loaded.version}` : ''}). Your changes were not saved. Reload to see
          theirs, then make yours again.
          <Button variant="primary" onClick={() => void reload()} data-testid="reload">
            Reload the flag
          </Button>
        </div>
      )}
      {stale && dirty && !conflict && (
        <div className="banner banner-warn" role="status" data-testid="stale">
          This flag changed on the server while you were editing (now version {loaded?.version}). Saving will
          be refused;
          <Button variant="ghost" onClick={() => void reload()}>
            reload it
          </Button>
        </div>
      )}
      {issues.length > 0 && (
        <div className="banner banner-error" role="alert" data-testid="server-issues">
          <strong>The server refused the flag:</strong>
          <ul>
            {issues.map((i) => (
              <li key={i.field + i.message}>
                <code>{i.field}</code> {i.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <ErrorBanner error={saveError} />
      {saved && (
        <p className="banner banner-ok" role="status" data-testid="saved">
          Saved as version {base.version}.
        </p>
      )}
      <fieldset className="row mode-switch plain">
        <legend className="sr-only">Editor</legend>
        <Button
          variant={mode === 'form' ? 'primary' : 'secondary'}
          aria-pressed={mode === 'form'}
          onClick={() => switchMode('form')}
        >
          Form
        </Button>
        <Button
          variant={mode === 'json' ? 'primary' : 'secondary'}
          aria-pressed={mode === 'json'}
          onClick={() => switchMode('json')}
          data-testid="json-mode"
        >
          JSON (every field)
        </Button>
      </fieldset>
      {mode === 'form' ? (
        <FlagForm
          draft={draft}
          onChange={update}
          issues={shownIssues}
          isNew={isNew}
          readOnly={readOnly}
          segments={(segments.data ?? []).map((s) => s.key)}
          flagKeys={(flags.data?.flags ?? []).map((f) => f.key).filter((k) => k !== draft.key)}
        />
      ) : (
        <Field
          label="The whole flag as JSON"
          hint="Every field of the flag model. The kill switch, version and timestamps are the server's: use the kill switch and the rollout tab."
          issues={jsonError ? [{ field: '(json)', message: jsonError }] : []}
        >
          {(props) => (
            <textarea
              {...props}
              className="mono json-editor"
              rows={28}
              spellCheck={false}
              readOnly={readOnly}
              value={jsonText}
              data-testid="json-editor"
              onChange={(e) => {
                setJsonText(e.target.value);
                try {
                  const parsed = JSON.parse(e.target.value) as FlagInput;
                  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
                    throw new Error('the flag must be a JSON object');
                  setJsonError(undefined);
                  update(parsed);
                } catch (err) {
                  setJsonError(err instanceof Error ? err.message : String(err));
                }
              }}
            />
          )}
        </Field>
      )}
      {mode === 'json' && shownIssues.length > 0 && issues.length === 0 && (
        <ul className="field-error">
          {shownIssues.map((i) => (
            <li key={i.field + i.message}>
              <code>{i.field}</code> {i.message}
            </li>
          ))}
        </ul>
      )}
      {!readOnly && (
        <div className="savebar">
          <span className="muted" data-testid="change-count">
            {dirty ? `${changes.length} change${changes.length === 1 ? '' : 's'}` : 'No changes'}
            {localIssues.length > 0 && issues.length === 0
              ? ` · ${localIssues.length} problem${localIssues.length === 1 ? '' : 's'} to fix`
              : ''}
          </span>
          {dirty && !isNew && (
            <Button
              onClick={() => {
                setDraft(base.flag);
                setIssues([]);
                setJsonText(JSON.stringify(base.flag, null, 2));
              }}
            >
              Discard changes
            </Button>
          )}
          {!isNew && loaded && <DeleteFlag env={env} flagKey={loaded.flag.key} version={loaded.version} />}
          <Button
            variant="primary"
            onClick={() => setReviewing(true)}
            disabled={!dirty || jsonError !== undefined || conflict}
            data-testid="review"
          >
            {isNew ? 'Review and create' : 'Review and save'}
          </Button>
        </div>
      )}
      <Dialog
        open={reviewing}
        title={isNew ? `Create ${draft.key || 'the flag'}` : `Save ${draft.key}`}
        onClose={() => setReviewing(false)}
        wide
      >
        <DiffView changes={changes} />
        {localIssues.length > 0 && (
          <p className="banner banner-warn" role="status">
            The form found {localIssues.length} problem{localIssues.length === 1 ? '' : 's'}; the server will
            refuse the flag until {localIssues.length === 1 ? 'it is' : 'they are'} fixed.
          </p>
        )}
        <Field label="Reason (optional, recorded in the audit log)">
          {(props) => (
            <input
              {...props}
              value={reason}
              onChange={(e) => setReason(e.target.value)}
              data-testid="save-reason"
            />
          )}
        </Field>
        <div className="row row-end">
          <Button onClick={() => setReviewing(false)}>Keep editing</Button>
          <Button variant="primary" onClick={() => void save()} disabled={busy} data-testid="confirm-save">
            {busy ? 'Saving…' : isNew ? 'Create the flag' : 'Save'}
          </Button>
        </div>
      </Dialog>
    </section>
  );
}

/** Deletes the flag after a confirmation (the server refuses while other flags require it: 409). */
function DeleteFlag({ env, flagKey, version }: { env: string; flagKey: string; version: number }) {
  const api = useApi();
  const client = useQueryClient();
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState('');
  const [error, setError] = useState<unknown>();
  const remove = async () => {
    setError(undefined);
    try {
      await api.send('DELETE', `/envs/${seg(env)}/flags/${seg(flagKey)}`, {
        headers: { 'if-match': `"${version}"` },
      });
      client.removeQueries({ queryKey: keys.flag(env, flagKey) });
      void client.invalidateQueries({ queryKey: keys.flags(env) });
      navigate(pathOf({ name: 'flags', env }));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <Button variant="ghost" onClick={() => setOpen(true)} data-testid="delete-flag">
        Delete flag
      </Button>
      <Dialog open={open} title={`Delete ${flagKey}?`} onClose={() => setOpen(false)}>
        <p>SDKs stop knowing the flag at once and serve their callers' defaults. Type the key to confirm.</p>
        <Field label="Flag key">
          {(props) => (
            <input
              {...props}
              value={typed}
              onChange={(e) => setTyped(e.target.value)}
              data-testid="delete-confirm-key"
            />
          )}
        </Field>
        <ErrorBanner error={error} />
        <div className="row row-end">
          <Button onClick={() => setOpen(false)}>Cancel</Button>
          <Button
            variant="danger"
            disabled={typed !== flagKey}
            onClick={() => void remove()}
            data-testid="confirm-delete-flag"
          >
            Delete {flagKey}
          </Button>
        </div>
      </Dialog>
    </>
  );
}

/** `12 s ago`, kept current while the page stays open (the flag itself may not change for hours). */
function Ago({ iso }: { iso: string | undefined }) {
  const now = useNow();
  return <>{ago(iso, now)}</>;
}
