import { useEffect, useState } from 'react';

export type Theme = 'light' | 'dark';

const STORAGE_KEY = 'vigil-console-theme';

/** The theme to start with: the one chosen before (a preference, never a secret), else the system's. */
export function initialTheme(): Theme {
  const saved = safeGet(STORAGE_KEY);
  if (saved === 'light' || saved === 'dark') return saved;
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

/** Sets the theme on the document (CSS reads `data-theme` on `<html>`). */
export function applyTheme(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
}

function safeGet(key: string): string | null {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(
    () => (document.documentElement.dataset.theme as Theme) ?? 'light',
  );
  useEffect(() => applyTheme(theme), [theme]);
  const next: Theme = theme === 'dark' ? 'light' : 'dark';
  return (
    <button
      type="button"
      className="btn btn-ghost"
      aria-label={`Switch to the ${next} theme`}
      data-testid="theme-toggle"
      onClick={() => {
        setTheme(next);
        try {
          window.localStorage.setItem(STORAGE_KEY, next);
        } catch {
          // A browser that refuses storage just does not remember the choice.
        }
      }}
    >
      {theme === 'dark' ? '☀ Light' : '☾ Dark'}
    </button>
  );
}
