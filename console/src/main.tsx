import './styles.css';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app.js';
import { Api, ApiError } from './lib/api.js';
import { SessionProvider } from './session.js';
import { applyTheme, initialTheme } from './theme.js';

applyTheme(initialTheme());

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // The live feed invalidates what changed; no refetch storms on focus.
      staleTime: 30_000,
      refetchOnWindowFocus: false,
      // Retry only what may pass on a retry: the server unreachable or briefly unavailable.
      retry: (count, error) =>
        count < 2 && error instanceof ApiError && (error.status === 0 || error.status >= 500),
    },
  },
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <SessionProvider api={new Api()}>
        <App />
      </SessionProvider>
    </QueryClientProvider>
  </StrictMode>,
);
