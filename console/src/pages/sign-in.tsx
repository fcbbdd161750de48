import { type FormEvent, useState } from 'react';
import { Button, Field } from '../components/ui.js';
import { ApiError, CLIENT_CODES } from '../lib/api.js';
import { useSession } from '../session.js';

/** Sign-in with an API token. The token goes to the server once, in a POST body, and is then forgotten. */
export function SignIn() {
  const { signIn, signedOut } = useSession();
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await signIn(token.trim());
      setToken('');
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <form
        className="card signin-card"
        onSubmit={submit}
        aria-labelledby="signin-title"
        data-testid="sign-in"
      >
        <h1 id="signin-title">
          <span aria-hidden="true" className="brand-mark">
            ◉
          </span>{' '}
          Vigil console
        </h1>
        {signedOut === 'expired' && (
          <p className="banner banner-warn" role="status" data-testid="session-expired">
            Your session expired. Sign in again to continue.
          </p>
        )}
        {signedOut === 'signed-out' && (
          <p className="banner banner-info" role="status">
            You are signed out.
          </p>
        )}
        <Field
          label="API token"
          hint="An admin, ops or read token (vgl_…). It is exchanged for a session cookie and not kept in this browser."
        >
          {(props) => (
            <input
              {...props}
              type="password"
              name="token"
              autoComplete="off"
              spellCheck={false}
              required
              value={token}
              onChange={(e) => setToken(e.target.value)}
            />
          )}
        </Field>
        {error && (
          <p className="field-error" role="alert" data-testid="sign-in-error">
            {error}
          </p>
        )}
        <Button variant="primary" type="submit" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </Button>
      </form>
    </main>
  );
}

function messageOf(err: unknown): string {
  if (!(err instanceof ApiError)) return String(err);
  if (err.code === CLIENT_CODES.unreachable) return 'The flag server cannot be reached. Is it running?';
  if (err.status === 401) return 'This token is not valid.';
  if (err.status === 403) return 'SDK keys cannot sign in to the console; use an admin, ops or read token.';
  return err.message;
}
