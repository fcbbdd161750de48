import { describe, expect, it } from 'vitest';
import { checkKey, parseBaseUrl, parseTimeout, resolveConfig } from '../src/config.js';
import { CliError } from '../src/errors.js';

const defaults = { url: 'http://127.0.0.1:4242', env: 'production', timeout: '10s' };

/** The code and exit code `fn` throws with. */
function failure(fn: () => unknown): { code: string; exitCode: number } {
  try {
    fn();
  } catch (error) {
    if (error instanceof CliError) return { code: error.code, exitCode: error.exitCode };
    throw error;
  }
  throw new Error('expected a CliError');
}

describe('configuration from options and environment', () => {
  it('takes the token from VIGIL_TOKEN and the rest from the options', () => {
    const config = resolveConfig({ ...defaults, json: true }, { VIGIL_TOKEN: ' vgl_abc\n' });
    expect(config).toMatchObject({ env: 'production', token: 'vgl_abc', timeoutMs: 10_000, json: true });
    expect(config.baseUrl.href).toBe('http://127.0.0.1:4242/');
  });

  it('a missing or blank VIGIL_TOKEN is a configuration error (exit 2)', () => {
    expect(failure(() => resolveConfig(defaults, {}))).toEqual({ code: 'VIGIL_CLI_NO_TOKEN', exitCode: 2 });
    expect(failure(() => resolveConfig(defaults, { VIGIL_TOKEN: '  ' }))).toEqual({
      code: 'VIGIL_CLI_NO_TOKEN',
      exitCode: 2,
    });
  });

  it('keeps a path prefix in the URL, so a server behind a proxy path is reachable', () => {
    expect(new URL('api/v1/incidents', parseBaseUrl('https://ops.example.com/vigil')).href).toBe(
      'https://ops.example.com/vigil/api/v1/incidents',
    );
  });

  it('refuses URLs that are not http(s) server bases (exit 2)', () => {
    for (const url of ['localhost:4242', 'ftp://x', 'http://x/?a=1', 'not a url']) {
      expect(failure(() => parseBaseUrl(url))).toEqual({ code: 'VIGIL_CLI_BAD_URL', exitCode: 2 });
    }
  });

  it('reads timeouts as seconds or durations, and refuses nonsense', () => {
    expect(parseTimeout('10')).toBe(10_000);
    expect(parseTimeout('2.5')).toBe(2500);
    expect(parseTimeout('500ms')).toBe(500);
    expect(parseTimeout('1m')).toBe(60_000);
    for (const bad of ['0', '-1', 'soon', '11m']) {
      expect(failure(() => parseTimeout(bad))).toEqual({ code: 'VIGIL_CLI_BAD_OPTION', exitCode: 2 });
    }
  });

  it('refuses a flag key or environment that no flag can have, before any request', () => {
    expect(checkKey('flag', 'checkout-v2.beta_1')).toBe('checkout-v2.beta_1');
    for (const bad of ['checkout v2', '../tokens', '-x', '']) {
      expect(failure(() => checkKey('flag', bad))).toEqual({ code: 'VIGIL_CLI_BAD_OPTION', exitCode: 2 });
    }
  });
});
