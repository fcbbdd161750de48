import { KEY_PATTERN } from '@vigil/proto';
import { cliError } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:4242';
export const DEFAULT_ENV = 'production';
export const DEFAULT_TIMEOUT = '10s';
const MAX_TIMEOUT_MS = 10 * 60_000;

/** The global options as commander hands them over (flag, env var or default). */
export interface GlobalOptions {
  url: string;
  env: string;
  timeout: string;
  json?: boolean;
  /** Only so that a token given on the command line is refused with a clear message. */
  token?: string;
}

/** What every command needs to talk to the server. */
export interface Config {
  /** The server's base URL, ending in `/` so that API paths resolve beneath it. */
  baseUrl: URL;
  env: string;
  token: string;
  timeoutMs: number;
  json: boolean;
}

/** Checks a flag key or environment name from the command line, so a typo fails before any request. */
export function checkKey(what: string, value: string): string {
  if (!KEY_PATTERN.test(value)) {
    throw cliError('VIGIL_CLI_BAD_OPTION', `${what} "${value}" is not a valid key`, {
      hint: 'keys match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$',
    });
  }
  return value;
}

/** `10`, `2.5` (seconds), `500ms`, `30s` or `1m` as milliseconds. */
export function parseTimeout(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(value);
  const ms = match
    ? Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm']
    : NaN;
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_TIMEOUT_MS) {
    throw cliError('VIGIL_CLI_BAD_OPTION', `--timeout "${value}" is not a timeout`, {
      hint: 'give seconds (10), or a duration such as 500ms, 30s, 1m; at most 10m',
    });
  }
  return Math.round(ms);
}

/** The server URL as a base for API paths; only http and https. */
export function parseBaseUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw cliError('VIGIL_CLI_BAD_URL', `"${value}" is not a URL`, {
      hint: `set --url or VIGIL_URL to the flag server, e.g. ${DEFAULT_URL}`,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw cliError('VIGIL_CLI_BAD_URL', `"${value}" is not an http(s) URL`, {
      hint: `set --url or VIGIL_URL to the flag server, e.g. ${DEFAULT_URL}`,
    });
  }
  if (url.search !== '' || url.hash !== '') {
    throw cliError('VIGIL_CLI_BAD_URL', `"${value}" has a query or fragment; give the server's base URL`);
  }
  // A server behind a reverse proxy may live under a path: keep it, and resolve API paths below it.
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/**
 * The configuration for a command from its global options and the environment. The token is read
 * only from VIGIL_TOKEN: a token on the command line would land in shell history and `ps` output.
 */
export function resolveConfig(options: GlobalOptions, environ: NodeJS.ProcessEnv): Config {
  if (options.token !== undefined) {
    throw cliError('VIGIL_CLI_USAGE', 'the token is not taken on the command line', {
      hint: 'export VIGIL_TOKEN=vgl_… instead (a command-line token ends up in shell history and ps)',
    });
  }
  const baseUrl = parseBaseUrl(options.url);
  const env = checkKey('environment', options.env);
  const timeoutMs = parseTimeout(options.timeout);
  const token = environ.VIGIL_TOKEN?.trim() ?? '';
  if (token === '') {
    throw cliError('VIGIL_CLI_NO_TOKEN', 'VIGIL_TOKEN is not set', {
      hint: 'export VIGIL_TOKEN=<a Vigil token>; reading needs the read scope, kill/revive/schedules/incidents need ops',
    });
  }
  if (/\s/.test(token)) throw cliError('VIGIL_CLI_NO_TOKEN', 'VIGIL_TOKEN contains whitespace');
  return { baseUrl, env, token, timeoutMs, json: options.json === true };
}

/** The URL without credentials, for messages. */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')}`;
}
