import { useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import { type Api, allows, type Scope, type Session } from './lib/api.js';

/** Why there is no session: never signed in, signed out, or the server said 401 mid-use. */
export type SignedOutReason = 'none' | 'signed-out' | 'expired';

interface SessionState {
  api: Api;
  /** undefined while the first `GET /api/v1/session` is in flight. */
  session: Session | null | undefined;
  signedOut: SignedOutReason;
  /** The error of the first session check when the server could not answer it. */
  loadError: Error | undefined;
  /** The last request could not reach the server. */
  unreachable: boolean;
  signIn(token: string): Promise<void>;
  signOut(): Promise<void>;
  retry(): void;
}

const SessionContext = createContext<SessionState | undefined>(undefined);

/** Holds the session (in memory only: the token is sent once and never stored; the cookie is HttpOnly). */
export function SessionProvider({ api, children }: { api: Api; children: ReactNode }) {
  const queryClient = useQueryClient();
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [signedOut, setSignedOut] = useState<SignedOutReason>('none');
  const [loadError, setLoadError] = useState<Error | undefined>();
  const [unreachable, setUnreachable] = useState(false);
  const [attempt, setAttempt] = useState(0);

  // biome-ignore lint/correctness/useExhaustiveDependencies: `attempt` is the retry button's trigger
  useEffect(() => {
    let live = true;
    setLoadError(undefined);
    api.session().then(
      (s) => live && setSession(s ?? null),
      (e: Error) => {
        if (!live) return;
        setLoadError(e);
        setSession(null);
      },
    );
    return () => {
      live = false;
    };
  }, [api, attempt]);

  useEffect(
    () =>
      api.onUnauthorized(() => {
        setSession((current) => {
          if (current) setSignedOut('expired');
          return null;
        });
        api.setCsrf(undefined);
        queryClient.clear();
      }),
    [api, queryClient],
  );

  useEffect(() => api.onReachability(setUnreachable), [api]);

  const signIn = useCallback(
    async (token: string) => {
      const s = await api.signIn(token);
      queryClient.clear();
      setLoadError(undefined);
      setSignedOut('none');
      setSession(s);
    },
    [api, queryClient],
  );

  const signOut = useCallback(async () => {
    try {
      await api.signOut();
    } finally {
      queryClient.clear();
      setSignedOut('signed-out');
      setSession(null);
    }
  }, [api, queryClient]);

  const retry = useCallback(() => setAttempt((n) => n + 1), []);

  const value = useMemo(
    () => ({ api, session, signedOut, loadError, unreachable, signIn, signOut, retry }),
    [api, session, signedOut, loadError, unreachable, signIn, signOut, retry],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (!state) throw new Error('useSession outside SessionProvider');
  return state;
}

export function useApi(): Api {
  return useSession().api;
}

/** Whether the signed-in session may do what needs `needed`. */
export function useCan(needed: Scope): boolean {
  return allows(useSession().session?.scope, needed);
}
