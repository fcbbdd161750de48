import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boolFlag, closedPort, ENV, READ_NAME, startServer, type TestServer, vigil } from './harness.js';

/** A local HTTP server answering every request with `handler`; undefined leaves requests unanswered. */
async function fakeServer(
  handler?: (url: string) => { status: number; type: string; body: string },
): Promise<{
  url: string;
  close(): Promise<void>;
}> {
  const server: Server = createServer((req, res) => {
    if (!handler) return;
    const { status, type, body } = handler(req.url ?? '');
    res.writeHead(status, { 'content-type': type }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// Independent cases, so they run side by side: each is a process start.
describe.concurrent('vigil exit codes and errors', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
    await server.store.putFlag(ENV, boolFlag('checkout-v2', 20), undefined, { actor: 'alice' });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('without VIGIL_TOKEN: exit 2, VIGIL_CLI_NO_TOKEN, nothing on stdout', async () => {
    const run = await vigil(['flags', 'list'], { VIGIL_URL: server.url });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      /^vigil: VIGIL_CLI_NO_TOKEN: VIGIL_TOKEN is not set\n {2}hint: export VIGIL_TOKEN=/,
    );
  });

  it('a token on the command line is refused (shell history): exit 2', async () => {
    const run = await vigil(['flags', 'list', '--token', server.tokens.ops], { VIGIL_URL: server.url });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('VIGIL_CLI_USAGE: the token is not taken on the command line');
  });

  it('kill without --reason is a usage error (exit 2) and changes nothing', async () => {
    const run = await vigil(['kill', 'checkout-v2'], {
      VIGIL_URL: server.url,
      VIGIL_TOKEN: server.tokens.ops,
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("required option '-r, --reason <text>' not specified");
    expect((await server.store.getFlag(ENV, 'checkout-v2'))!.killed).toBe(false);
  });

  it('an unknown token: exit 1 with VIGIL_UNAUTHORIZED and a hint about VIGIL_TOKEN', async () => {
    const run = await vigil(['flags', 'list'], {
      VIGIL_URL: server.url,
      VIGIL_TOKEN: 'vgl_not-a-real-token',
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^vigil: VIGIL_UNAUTHORIZED \(HTTP 401\): unknown token\n {2}hint: check VIGIL_TOKEN/,
    );
  });

  it('a read-scope token cannot kill: exit 1 with VIGIL_FORBIDDEN, and the flag stays on', async () => {
    const run = await vigil(['kill', 'checkout-v2', '--reason', 'errors'], {
      VIGIL_URL: server.url,
      VIGIL_TOKEN: server.tokens.read,
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(
      `vigil: VIGIL_FORBIDDEN (HTTP 403): token "${READ_NAME}" lacks a scope for this route (needs one of admin, ops)`,
    );
    expect((await server.store.getFlag(ENV, 'checkout-v2'))!.killed).toBe(false);
  });

  it('an unknown flag with --json: exit 1, the error as JSON on stderr, stdout empty', async () => {
    const run = await vigil(['kill', 'checkout-v3', '--reason', 'typo', '--json'], {
      VIGIL_URL: server.url,
      VIGIL_TOKEN: server.tokens.ops,
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(JSON.parse(run.stderr)).toEqual({
      error: { code: 'VIGIL_NOT_FOUND', message: 'no flag checkout-v3 in production', status: 404 },
    });
  });

  it('no server listening: exit 3, and the message names the URL', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await vigil(['flags', 'list'], { VIGIL_URL: url, VIGIL_TOKEN: 'vgl_x' });
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(
      new RegExp(`^vigil: VIGIL_CLI_UNREACHABLE: cannot reach the Vigil server at ${url} \\(.*ECONNREFUSED`),
    );
  });

  it('no answer within --timeout: exit 3 with VIGIL_CLI_TIMEOUT', async () => {
    const silent = await fakeServer();
    try {
      const run = await vigil(['--timeout', '1s', 'flags', 'list'], {
        VIGIL_URL: silent.url,
        VIGIL_TOKEN: 'vgl_x',
      });
      expect(run.code).toBe(3);
      expect(run.stderr).toContain(
        `vigil: VIGIL_CLI_TIMEOUT: no answer from ${silent.url} within 1 s (GET /api/v1/envs/production/flags)`,
      );
    } finally {
      await silent.close();
    }
  });

  it('an answer that breaks the contract: exit 4 naming the field, not a crash', async () => {
    // A flag list from a server whose flags carry a state this CLI does not know.
    const flag = { ...boolFlag('checkout-v2', 20), killed: 'maybe' };
    const other = await fakeServer(() => ({
      status: 200,
      type: 'application/json',
      body: JSON.stringify({ revision: 3, flags: [flag] }),
    }));
    try {
      const run = await vigil(['flags', 'list'], { VIGIL_URL: other.url, VIGIL_TOKEN: 'vgl_x' });
      expect(run.code).toBe(4);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(
        /^vigil: VIGIL_CLI_BAD_RESPONSE \(HTTP 200\): the answer to GET \/api\/v1\/envs\/production\/flags does not match this CLI's contract \(flags\[0\]\.killed: /,
      );
    } finally {
      await other.close();
    }
  });
});
