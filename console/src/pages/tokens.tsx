import { useQueryClient } from '@tanstack/react-query';
import type { TokenInfo, TokenScope } from '@vigil/proto';
import { useState } from 'react';
import { Button, Dialog, Empty, ErrorBanner, Field, Loading } from '../components/ui.js';
import { ApiError, type FieldIssue, seg } from '../lib/api.js';
import { ago } from '../lib/format.js';
import { issuesAt } from '../lib/issues.js';
import { keys, useEnvs, useTokens } from '../queries.js';
import { useApi, useCan } from '../session.js';

const SCOPES: { scope: TokenScope; what: string }[] = [
  { scope: 'read', what: 'sees everything' },
  { scope: 'ops', what: 'kills, revives, runs schedules, acknowledges incidents' },
  { scope: 'admin', what: 'edits flags, segments and tokens' },
  { scope: 'sdk-server', what: 'a server SDK key: every flag of one environment' },
  { scope: 'sdk-client', what: 'a browser SDK key: the clientSide flags of one environment' },
];

/** Tokens (admin only): create (the secret is shown once), list, delete. */
export function TokensPage() {
  const canAdmin = useCan('admin');
  if (!canAdmin) {
    return (
      <Empty title="Tokens are for admins">
        <p>Your token cannot list or create tokens.</p>
      </Empty>
    );
  }
  return <Tokens />;
}

function Tokens() {
  const api = useApi();
  const client = useQueryClient();
  const tokens = useTokens();
  const envs = useEnvs();
  const [name, setName] = useState('');
  const [scope, setScope] = useState<TokenScope>('read');
  const [env, setEnv] = useState('');
  const [issues, setIssues] = useState<FieldIssue[]>([]);
  const [error, setError] = useState<unknown>();
  const [created, setCreated] = useState<{ token: TokenInfo; secret: string } | undefined>();
  const [deleting, setDeleting] = useState<TokenInfo | undefined>();

  const create = async () => {
    setIssues([]);
    setError(undefined);
    try {
      const r = await api.post<{ token: TokenInfo; secret: string }>('/tokens', {
        name: name.trim(),
        scopes: [scope],
        ...(env ? { env } : {}),
      });
      setCreated(r);
      setName('');
      void client.invalidateQueries({ queryKey: keys.tokens });
    } catch (e) {
      if (e instanceof ApiError && e.issues.length) setIssues(e.issues);
      else setError(e);
    }
  };

  const remove = async (t: TokenInfo) => {
    setError(undefined);
    try {
      await api.delete(`/tokens/${seg(t.id)}`);
      setDeleting(undefined);
      void client.invalidateQueries({ queryKey: keys.tokens });
    } catch (e) {
      setDeleting(undefined);
      setError(e);
    }
  };

  const sdk = scope.startsWith('sdk-');
  return (
    <section aria-labelledby="tokens-title">
      <h1 id="tokens-title">Tokens</h1>
      <form
        className="card"
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
        aria-labelledby="create-token-title"
      >
        <h2 id="create-token-title">Create a token</h2>
        <div className="grid-3">
          <Field label="Name" issues={issuesAt(issues, 'name')}>
            {(props) => (
              <input
                {...props}
                required
                value={name}
                onChange={(e) => setName(e.target.value)}
                data-testid="token-name"
              />
            )}
          </Field>
          <Field
            label="Scope"
            hint={SCOPES.find((s) => s.scope === scope)?.what}
            issues={issuesAt(issues, 'scopes')}
          >
            {(props) => (
              <select
                {...props}
                value={scope}
                onChange={(e) => setScope(e.target.value as TokenScope)}
                data-testid="token-scope"
              >
                {SCOPES.map((s) => (
                  <option key={s.scope} value={s.scope}>
                    {s.scope}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field
            label={sdk ? 'Environment (required)' : 'Environment (optional)'}
            issues={issuesAt(issues, 'env')}
          >
            {(props) => (
              <select {...props} value={env} onChange={(e) => setEnv(e.target.value)} data-testid="token-env">
                <option value="">{sdk ? 'choose one' : 'every environment'}</option>
                {(envs.data ?? []).map((e) => (
                  <option key={e} value={e}>
                    {e}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        <Button type="submit" variant="primary" disabled={name.trim() === ''} data-testid="create-token">
          Create
        </Button>
      </form>
      <ErrorBanner error={error} />
      {tokens.isPending && <Loading />}
      <ErrorBanner error={tokens.error} onRetry={() => void tokens.refetch()} />
      {tokens.data && tokens.data.length === 0 && <Empty title="No tokens" />}
      {tokens.data && tokens.data.length > 0 && (
        <table className="table" data-testid="tokens">
          <caption className="sr-only">Tokens (their secrets are never shown again)</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Scopes</th>
              <th scope="col">Environment</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.data.map((t) => (
              <tr key={t.id} data-testid="token-row" data-token={t.name}>
                <th scope="row">{t.name}</th>
                <td>{t.scopes.join(', ')}</td>
                <td>{t.env ?? 'all'}</td>
                <td>
                  {ago(t.createdAt)}
                  {t.createdBy ? ` by ${t.createdBy}` : ''}
                </td>
                <td>{ago(t.lastUsedAt)}</td>
                <td>
                  <Button
                    variant="ghost"
                    onClick={() => setDeleting(t)}
                    aria-label={`Delete token ${t.name}`}
                  >
                    Delete
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Dialog
        open={created !== undefined}
        title={`Token ${created?.token.name ?? ''} created`}
        onClose={() => setCreated(undefined)}
      >
        <p>
          Copy the secret now: <strong>it is shown this once</strong> and the server keeps only its hash.
        </p>
        <p>
          <output className="secret mono" data-testid="token-secret">
            {created?.secret}
          </output>
        </p>
        <div className="row row-end">
          <Button
            onClick={() => {
              if (created) void navigator.clipboard?.writeText(created.secret).catch(() => {});
            }}
          >
            Copy
          </Button>
          <Button variant="primary" onClick={() => setCreated(undefined)}>
            I have copied it
          </Button>
        </div>
      </Dialog>
      <Dialog
        open={deleting !== undefined}
        title={`Delete token ${deleting?.name ?? ''}?`}
        onClose={() => setDeleting(undefined)}
      >
        <p>Whatever uses it stops working at once; open SDK streams using it are closed.</p>
        <div className="row row-end">
          <Button onClick={() => setDeleting(undefined)}>Cancel</Button>
          <Button
            variant="danger"
            onClick={() => deleting && void remove(deleting)}
            data-testid="confirm-delete-token"
          >
            Delete
          </Button>
        </div>
      </Dialog>
    </section>
  );
}
