import { useState } from 'react';
import { Button, ErrorBanner, Field } from '../components/ui.js';
import { seg } from '../lib/api.js';
import { useApi } from '../session.js';

interface Evaluation {
  value: unknown;
  variant?: string;
  reason: string;
  ruleId?: string;
  errorCode?: string;
  detail?: string;
  flagVersion?: number;
}

/** "Test this flag": evaluates a context through the server's evaluate endpoint (the SDKs' evaluator). */
export function TestPanel({ env, flagKey }: { env: string; flagKey: string }) {
  const api = useApi();
  const [text, setText] = useState('{\n  "key": "user-1",\n  "country": "DE"\n}');
  const [parseError, setParseError] = useState<string | undefined>();
  const [result, setResult] = useState<Evaluation | undefined>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const run = async () => {
    let context: unknown;
    try {
      context = JSON.parse(text);
      setParseError(undefined);
    } catch (e) {
      setParseError(e instanceof Error ? e.message : String(e));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.post<{ results: Record<string, Evaluation> }>(`/envs/${seg(env)}/evaluate`, {
        context,
        flags: [flagKey],
      });
      setResult(r.results[flagKey]);
    } catch (e) {
      setError(e);
      setResult(undefined);
    } finally {
      setBusy(false);
    }
  };

  return (
    <aside className="card test-panel" aria-labelledby="test-title">
      <h2 id="test-title">Test this flag</h2>
      <p className="hint">
        Evaluated by the server as the SDKs evaluate it, on what is saved (not your unsaved edits).
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <Field label="Context (JSON)" issues={parseError ? [{ field: 'context', message: parseError }] : []}>
          {(props) => (
            <textarea
              {...props}
              className="mono"
              rows={6}
              spellCheck={false}
              value={text}
              onChange={(e) => setText(e.target.value)}
              data-testid="test-context"
            />
          )}
        </Field>
        <Button type="submit" variant="primary" disabled={busy} data-testid="evaluate">
          {busy ? 'Evaluating…' : 'Evaluate'}
        </Button>
      </form>
      <ErrorBanner error={error} />
      {result && (
        <dl className="kv" data-testid="evaluation">
          <dt>Value</dt>
          <dd className="mono" data-testid="eval-value">
            {JSON.stringify(result.value)}
          </dd>
          <dt>Variant</dt>
          <dd className="mono" data-testid="eval-variant">
            {result.variant ?? '—'}
          </dd>
          <dt>Reason</dt>
          <dd data-testid="eval-reason">
            {result.reason}
            {result.detail ? ` (${result.detail})` : ''}
            {result.errorCode ? ` — ${result.errorCode}` : ''}
          </dd>
          <dt>Matched rule</dt>
          <dd className="mono" data-testid="eval-rule">
            {result.ruleId ?? 'none'}
          </dd>
        </dl>
      )}
    </aside>
  );
}
