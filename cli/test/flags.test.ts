import { type Flag, flagSchema, verdictSchema } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boolFlag, ENV, OPS_NAME, startServer, type TestServer, vigil } from './harness.js';

const MINUTE = 60_000;

/** The row of `key` in a table printed on stdout, split on runs of two or more spaces. */
function row(stdout: string, key: string): string[] {
  const line = stdout.split('\n').find((l) => l.startsWith(`${key} `));
  if (!line) throw new Error(`no row for ${key} in:\n${stdout}`);
  return line.split(/ {2,}/);
}

describe('vigil flags, kill switch, schedules and health against a real flag server', () => {
  let server: TestServer;
  let original: Flag;
  const ops = () => ({ VIGIL_URL: server.url, VIGIL_TOKEN: server.tokens.ops });

  beforeAll(async () => {
    server = await startServer();
    const { store } = server;
    original = await store.putFlag(
      ENV,
      boolFlag('checkout-v2', 20, {
        owner: 'team-checkout',
        rules: [
          {
            id: 'sea',
            clauses: [{ attribute: 'country', op: 'in', values: ['TH', 'SG', 'MY'] }],
            serve: { variant: 'on' },
          },
        ],
      }),
      undefined,
      { actor: 'alice' },
    );
    await store.putFlag(ENV, boolFlag('legacy-banner', 0, { enabled: false }), undefined, { actor: 'alice' });
    const search = await store.putFlag(ENV, boolFlag('search-v3', 5), undefined, { actor: 'alice' });
    await store.putSchedule(
      ENV,
      'search-v3',
      {
        actor: 'guardian',
        schedule: {
          variant: 'on',
          steps: [
            { percent: 5, hold: '5m' },
            { percent: 20, hold: '10m' },
            { percent: 100, hold: 0 },
          ],
          status: 'running',
          stepIndex: 1,
          stepStartedAt: new Date(Date.now() - MINUTE).toISOString(),
          updatedAt: new Date().toISOString(),
        },
      },
      { version: search.version },
    );
    const payments = await store.putFlag(ENV, boolFlag('payments', 10), undefined, { actor: 'alice' });
    const figures = (variant: string, requests: number, errors: number) => ({
      variant,
      requests,
      errors,
      errorRate: errors / requests,
      p99LatencyMs: 120,
    });
    await store.putVerdict(
      verdictSchema.parse({
        env: ENV,
        flag: 'payments',
        version: payments.version,
        status: 'regression',
        guarded: true,
        severity: 'sev1',
        autoKill: false,
        controlVariant: 'off',
        epoch: 1,
        triggers: ['error_rate_vs_control'],
        reason: 'variant on: error rate 5.00% vs control 0.50%',
        variants: [
          {
            variant: 'on',
            status: 'regression',
            triggers: ['error_rate_vs_control'],
            reason: 'error rate 5.00% vs control 0.50%',
            treatment: figures('on', 1000, 50),
            control: figures('off', 9000, 45),
            window: { treatment: figures('on', 500, 25), control: figures('off', 4500, 22) },
          },
        ],
        evaluatedAt: new Date().toISOString(),
        guardian: 'g1',
      }),
      MINUTE,
    );
  });

  afterAll(async () => {
    await server?.close();
  });

  it('flags list prints one row per flag: state, version, what it serves, schedule', async () => {
    const run = await vigil(['flags', 'list'], ops());
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^production · revision \d+ · 4 flags\n/);
    expect(row(run.stdout, 'checkout-v2')).toEqual([
      'checkout-v2',
      'on',
      String(original.version),
      '1 rule, else on 20% / off 80%',
      '-',
    ]);
    expect(row(run.stdout, 'legacy-banner').slice(0, 2)).toEqual(['legacy-banner', 'off']);
    expect(row(run.stdout, 'search-v3')[4]).toBe('on 20% · step 2/3 · running');
  });

  it('flags list --json prints only the server list, every flag valid', async () => {
    const run = await vigil(['flags', 'list', '--json'], ops());
    expect(run.code).toBe(0);
    const body = JSON.parse(run.stdout) as { revision: number; flags: unknown[] };
    expect(body.revision).toBe((await server.store.snapshot(ENV)).revision);
    expect(body.flags.map((f) => flagSchema.parse(f).key)).toEqual([
      'checkout-v2',
      'legacy-banner',
      'payments',
      'search-v3',
    ]);
  });

  it("kill serves the offVariant to everyone, recording the reason and the token's name", async () => {
    const run = await vigil(['kill', 'checkout-v2', '--reason', 'checkout 5xx since the deploy'], ops());
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const killed = (await server.store.getFlag(ENV, 'checkout-v2'))!;
    expect(killed).toMatchObject({
      killed: true,
      killedBy: OPS_NAME,
      killReason: 'checkout 5xx since the deploy',
    });
    const [entry] = await server.store.audit(ENV, { limit: 1, target: 'checkout-v2' });
    expect(entry).toMatchObject({
      action: 'flag.kill',
      actor: OPS_NAME,
      reason: 'checkout 5xx since the deploy',
    });
    expect(run.stdout).toContain('Killed checkout-v2 in production: everyone now gets "off".');
    expect(run.stdout).toMatch(/was +on, serving 1 rule, else on 20% \/ off 80% \(version \d+\)/);
    expect(run.stdout).toContain(
      `KILLED by ${OPS_NAME} just now: checkout 5xx since the deploy (version ${killed.version})`,
    );
    expect(run.stdout).toContain('vigil revive checkout-v2 --reason');
  });

  it('a second kill changes nothing, says so and exits 0', async () => {
    const before = (await server.store.getFlag(ENV, 'checkout-v2'))!;
    const run = await vigil(['kill', 'checkout-v2', '--reason', 'again'], ops());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^checkout-v2 in production was already killed \(KILLED by oncall-alice .*\); nothing changed\.\n$/,
    );
    expect((await server.store.getFlag(ENV, 'checkout-v2'))!).toEqual(before);
  });

  it('flags get shows the kill switch first and what a revive would restore', async () => {
    const run = await vigil(['flags', 'get', 'checkout-v2'], ops());
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toMatch(/^checkout-v2 · production · version \d+$/);
    expect(lines[1]).toMatch(/^state +KILLED by oncall-alice .*: checkout 5xx since the deploy/);
    expect(run.stdout).toMatch(
      /serving +off to everyone \(killed\); revive restores: 1 rule, else on 20% \/ off 80%/,
    );
    expect(run.stdout).toMatch(/rules +1\. sea: country in TH, SG, MY → on/);
    expect(run.stdout).toMatch(/owner +team-checkout/);
  });

  it('revive --json restores exactly what was served before the kill', async () => {
    const run = await vigil(['revive', 'checkout-v2', '--reason', 'fix deployed', '--json'], ops());
    expect(run.code).toBe(0);
    const answer = flagSchema.parse(JSON.parse(run.stdout));
    const stored = (await server.store.getFlag(ENV, 'checkout-v2'))!;
    expect(answer).toEqual(stored);
    expect(stored.killed).toBe(false);
    expect({ rules: stored.rules, fallthrough: stored.fallthrough, enabled: stored.enabled }).toEqual({
      rules: original.rules,
      fallthrough: original.fallthrough,
      enabled: original.enabled,
    });
    const [entry] = await server.store.audit(ENV, { limit: 1, target: 'checkout-v2' });
    expect(entry).toMatchObject({ action: 'flag.revive', actor: OPS_NAME, reason: 'fix deployed' });
  });

  it('schedule status lists every step, marks the one in force and its hold, and the gate', async () => {
    const run = await vigil(['schedule', 'status', 'search-v3'], ops());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/status +running/);
    expect(run.stdout).toMatch(/1\. 5% for 5m +done/);
    expect(run.stdout).toMatch(/2\. 20% for 10m +← now, hold ends in (8m|9m)/);
    expect(run.stdout).toMatch(/3\. 100%\n/);
    expect(run.stdout).toMatch(/guardian +wait · insufficient_data: no verdict from the guardian yet/);
  });

  it('schedule pause keeps the hold left and the reason; resume runs the same step again', async () => {
    const paused = await vigil(['schedule', 'pause', 'search-v3', '--reason', 'db migration'], ops());
    expect(paused.code).toBe(0);
    expect(paused.stdout).toMatch(
      /^Paused the schedule of search-v3 in production at step 2\/3 \(on 20%\); (8m|9m)( \d+s)? of hold left\.\n$/,
    );
    const stored = (await server.store.getFlag(ENV, 'search-v3'))!.schedule!;
    expect(stored).toMatchObject({ status: 'paused', stepIndex: 1, reason: 'db migration' });
    expect(stored.remainingHoldMs).toBeGreaterThan(7 * MINUTE);
    expect(stored.remainingHoldMs).toBeLessThanOrEqual(9 * MINUTE);

    const resumed = await vigil(['schedule', 'resume', 'search-v3'], ops());
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(
      /^Resumed the schedule of search-v3 in production at step 2\/3 \(on 20%\); hold ends in/,
    );
    expect((await server.store.getFlag(ENV, 'search-v3'))!.schedule).toMatchObject({
      status: 'running',
      stepIndex: 1,
    });
  });

  it("schedule abort of a flag without a schedule prints the server's refusal and exits 1", async () => {
    const run = await vigil(['schedule', 'abort', 'legacy-banner'], ops());
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('vigil: VIGIL_NOT_FOUND (HTTP 404): flag legacy-banner has no schedule');
  });

  it("health prints the guardian's gate, why, and the cohorts it compared", async () => {
    const run = await vigil(['health', 'payments'], { ...ops(), VIGIL_TOKEN: server.tokens.read });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/gate +FAIL \(regression, sev1\)/);
    expect(run.stdout).toMatch(/reason +variant on: error rate 5\.00% vs control 0\.50%/);
    expect(run.stdout).toMatch(/triggers +error_rate_vs_control/);
    expect(row(run.stdout, 'on')).toEqual(['on', '1,000', '50', '5.00%', '120 ms']);
    expect(row(run.stdout, 'off')).toEqual(['off (control)', '9,000', '45', '0.50%', '120 ms']);
  });
});
