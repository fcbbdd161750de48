import { incidentSchema } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPS_NAME, openIncident, startServer, type TestServer, vigil } from './harness.js';

describe('vigil incidents against a real flag server', () => {
  let server: TestServer;
  const ops = () => ({ VIGIL_URL: server.url, VIGIL_TOKEN: server.tokens.ops });
  const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

  beforeAll(async () => {
    server = await startServer();
    await server.store.putIncident({
      ...openIncident('inc_old', 'banner', ago(86_400_000)),
      status: 'resolved',
      resolvedAt: ago(80_000_000),
      resolvedBy: 'bob',
    });
    await server.store.putIncident(openIncident('inc_ack', 'checkout-v2', ago(600_000)));
    await server.store.putIncident(openIncident('inc_res', 'payments', ago(300_000)));
  });

  afterAll(async () => {
    await server?.close();
  });

  it('incidents list shows every incident newest first; --status filters', async () => {
    const [all, resolved] = await Promise.all([
      vigil(['incidents', 'list'], ops()),
      vigil(['incidents', 'list', '--status', 'resolved', '--json'], ops()),
    ]);
    expect(all.code).toBe(0);
    const lines = all.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +SEV +STATUS +ENV +FLAG +DETECTED +TITLE$/);
    expect(lines.slice(1).map((l) => l.split(/ {2,}/))).toEqual([
      [
        'inc_res',
        'sev2',
        'open',
        'production',
        'payments',
        expect.stringMatching(/^5m( \d+s)? ago$/),
        'payments regressed',
      ],
      [
        'inc_ack',
        'sev2',
        'open',
        'production',
        'checkout-v2',
        expect.stringMatching(/^10m( \d+s)? ago$/),
        'checkout-v2 regressed',
      ],
      ['inc_old', 'sev2', 'resolved', 'production', 'banner', '1d ago', 'banner regressed'],
    ]);
    expect(resolved.code).toBe(0);
    const body = JSON.parse(resolved.stdout) as { incidents: unknown[] };
    expect(body.incidents.map((i) => incidentSchema.parse(i).id)).toEqual(['inc_old']);
  });

  it("ack records the token's name and the note on the incident's timeline", async () => {
    const run = await vigil(['incidents', 'ack', 'inc_ack', '--note', 'looking at the checkout pods'], ops());
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      `Acknowledged inc_ack (checkout-v2 regressed) as ${OPS_NAME}; its escalation stops.\n`,
    );
    const stored = (await server.store.getIncident('inc_ack'))!;
    expect(stored).toMatchObject({ status: 'acknowledged', acknowledgedBy: OPS_NAME });
    expect(stored.timeline.at(-1)).toMatchObject({
      kind: 'acknowledged',
      actor: OPS_NAME,
      message: `Acknowledged by ${OPS_NAME}: looking at the checkout pods`,
      data: { note: 'looking at the checkout pods' },
    });
  });

  it('resolve --json prints the resolved incident; the store has it resolved, with a timeline entry', async () => {
    const run = await vigil(['incidents', 'resolve', 'inc_res', '--note', 'rolled back', '--json'], ops());
    expect(run.code).toBe(0);
    const answer = incidentSchema.parse(JSON.parse(run.stdout));
    const stored = (await server.store.getIncident('inc_res'))!;
    expect(answer).toEqual(stored);
    expect(stored).toMatchObject({ status: 'resolved', resolvedBy: OPS_NAME });
    expect(stored.timeline.map((e) => e.kind)).toEqual(['detection', 'kill', 'resolved']);
  });

  it('incidents show prints the facts, the cohorts at detection and the timeline', async () => {
    const run = await vigil(['incidents', 'show', 'inc_ack'], ops());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^inc_ack · sev2 · ACKNOWLEDGED\n/);
    expect(run.stdout).toMatch(/flag +checkout-v2 version 1 in production \(killed by the guardian\)/);
    expect(run.stdout).toMatch(
      new RegExp(`acknowledged +.* UTC by ${OPS_NAME} \\(10m( \\d+s)? after detection\\)`),
    );
    expect(run.stdout).toMatch(/off \(control\) +9,000 +45 +0\.50% +120 ms/);
    expect(run.stdout).toMatch(/acknowledged +Acknowledged by oncall-alice: looking at the checkout pods/);
  });

  it('incidents postmortem prints the Markdown draft as is', async () => {
    const run = await vigil(['incidents', 'postmortem', 'inc_ack'], ops());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^# Postmortem: checkout-v2 regressed\n/);
    expect(run.stdout).toContain('## Timeline');
  });

  it('ack of an unknown incident prints VIGIL_NOT_FOUND and exits 1', async () => {
    const run = await vigil(['incidents', 'ack', 'inc_nope'], ops());
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('vigil: VIGIL_NOT_FOUND (HTTP 404): no incident inc_nope');
  });
});
