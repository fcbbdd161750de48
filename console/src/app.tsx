import { useEffect, useState } from 'react';
import { Button, ErrorBanner, Link, Loading } from './components/ui.js';
import { matchRoute, navigate, pathOf, type Route, useLocation } from './lib/router.js';
import { type LiveState, useLiveFeed } from './live.js';
import { AuditPage } from './pages/audit.js';
import { FlagPage } from './pages/flag.js';
import { FlagsPage } from './pages/flags.js';
import { IncidentPage, IncidentsPage } from './pages/incidents.js';
import { SegmentsPage } from './pages/segments.js';
import { SignIn } from './pages/sign-in.js';
import { TokensPage } from './pages/tokens.js';
import { useEnvs } from './queries.js';
import { useCan, useSession } from './session.js';
import { ThemeToggle } from './theme.js';

const DEFAULT_ENV = 'production';

/** The console: sign-in until there is a session, then the layout around the current page. */
export function App() {
  const { session, loadError, retry } = useSession();
  if (session === undefined) return <Loading label="Connecting to the flag server…" />;
  if (session === null) {
    return (
      <>
        {loadError && (
          <div className="page">
            <ErrorBanner error={loadError} onRetry={retry} />
          </div>
        )}
        <SignIn />
      </>
    );
  }
  return <Shell />;
}

function Shell() {
  const location = useLocation();
  const route = matchRoute(location);
  const envs = useEnvs();
  const [lastEnv, setLastEnv] = useState<string | undefined>();
  const routeEnv = 'env' in route ? route.env : undefined;
  const { session } = useSession();
  // A token bound to one environment sees that one only; others start in production when it exists.
  const list = session?.env ? [session.env] : envs.data && envs.data.length > 0 ? envs.data : [DEFAULT_ENV];
  const env = routeEnv ?? lastEnv ?? (list.includes(DEFAULT_ENV) ? DEFAULT_ENV : list[0]!);
  useEffect(() => {
    if (routeEnv) setLastEnv(routeEnv);
  }, [routeEnv]);
  useEffect(() => {
    if (route.name === 'home' && (session?.env || !envs.isPending)) {
      navigate(pathOf({ name: 'flags', env }), { replace: true });
    }
  }, [route.name, env, session?.env, envs.isPending]);
  const live = useLiveFeed(env);
  const envChoices = list.includes(env) ? list : [...list, env];

  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <Header route={route} env={env} envs={envChoices} live={live} />
      <Reachability />
      <main id="main" className="page" tabIndex={-1}>
        <Page route={route} env={env} />
      </main>
    </div>
  );
}

function Reachability() {
  const { unreachable } = useSession();
  if (!unreachable) return null;
  return (
    <div className="banner banner-error banner-sticky" role="alert" data-testid="unreachable">
      <strong>The flag server cannot be reached.</strong> What you see may be out of date; the console retries
      on its own.
    </div>
  );
}

function Header({ route, env, envs, live }: { route: Route; env: string; envs: string[]; live: LiveState }) {
  const { session, signOut } = useSession();
  const isAdmin = useCan('admin');
  const section =
    route.name === 'flags' || route.name === 'flag' || route.name === 'new-flag'
      ? 'flags'
      : route.name === 'incident'
        ? 'incidents'
        : route.name;
  const nav = [
    { id: 'flags', label: 'Flags', href: pathOf({ name: 'flags', env }) },
    { id: 'segments', label: 'Segments', href: pathOf({ name: 'segments', env }) },
    ...(session?.env === undefined
      ? [{ id: 'incidents', label: 'Incidents', href: pathOf({ name: 'incidents' }) }]
      : []),
    { id: 'audit', label: 'Audit', href: pathOf({ name: 'audit', env }) },
    ...(isAdmin && session?.env === undefined
      ? [{ id: 'tokens', label: 'Tokens', href: pathOf({ name: 'tokens' }) }]
      : []),
  ];
  const switchEnv = (next: string) => {
    if ('env' in route) navigate(pathOf({ ...route, env: next } as Route));
    else navigate(pathOf({ name: 'flags', env: next }));
  };
  return (
    <header className="topbar">
      <Link href={pathOf({ name: 'flags', env })} className="brand">
        <span aria-hidden="true" className="brand-mark">
          ◉
        </span>{' '}
        Vigil
      </Link>
      <nav aria-label="Main" className="mainnav">
        {nav.map((n) => (
          <Link key={n.id} href={n.href} aria-current={section === n.id ? 'page' : undefined}>
            {n.label}
          </Link>
        ))}
      </nav>
      <div className="topbar-right">
        <label className="env-switch">
          <span>Environment</span>
          <select value={env} onChange={(e) => switchEnv(e.target.value)} data-testid="env-switch">
            {envs.map((e) => (
              <option key={e} value={e}>
                {e}
              </option>
            ))}
          </select>
        </label>
        <span className={`live live-${live}`} data-testid="live" title={`Live updates: ${live}`}>
          <span aria-hidden="true">●</span> {live === 'live' ? 'Live' : live === 'down' ? 'Polling' : '…'}
        </span>
        <ThemeToggle />
        <span className="who" data-testid="who">
          {session?.name} <span className={`badge badge-scope`}>{session?.scope}</span>
        </span>
        <Button variant="ghost" onClick={() => void signOut()}>
          Sign out
        </Button>
      </div>
    </header>
  );
}

function Page({ route, env }: { route: Route; env: string }) {
  switch (route.name) {
    case 'home':
      return <Loading />;
    case 'flags':
      return <FlagsPage env={route.env} />;
    case 'new-flag':
      return <FlagPage env={route.env} flagKey={undefined} tab="edit" />;
    case 'flag':
      return (
        <FlagPage key={`${route.env}/${route.key}`} env={route.env} flagKey={route.key} tab={route.tab} />
      );
    case 'incidents':
      return <IncidentsPage env={env} />;
    case 'incident':
      return <IncidentPage id={route.id} />;
    case 'audit':
      return <AuditPage env={route.env} />;
    case 'segments':
      return <SegmentsPage env={route.env} />;
    case 'tokens':
      return <TokensPage />;
    case 'not-found':
      return (
        <div>
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>.{' '}
            <Link href={pathOf({ name: 'flags', env })}>Go to the flags</Link>.
          </p>
        </div>
      );
  }
}
