import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDemo } from './run-demo.js';

describe('pnpm demo', () => {
  let cwd: string | undefined;
  afterAll(async () => {
    if (cwd) await rm(cwd, { recursive: true, force: true });
  });

  it('starts Vigil, rolls out a flag under traffic, and shows the guardian killing it with incident, notifications and postmortem', async () => {
    cwd = await mkdtemp(join(tmpdir(), 'vigil-demo-test-'));
    const { code, out } = await runDemo(['--hold', '6s', '--rate', '250'], { INIT_CWD: cwd });
    expect(code, out).toBe(0);
    expect(out).toContain('guardian started the rollout: 5% of users get the new checkout');
    expect(out).toMatch(/guardian raised the rollout to 20% after a healthy hold/);
    expect(out).toContain('fault injected');
    expect(out).toMatch(/guardian killed checkout-v2 \d+\.\d s after the fault began/);
    expect(out).toMatch(/incident inc_\w+ opened \(sev2\)/);
    expect(out).toContain(`the app's SDK serves "off" to every user`);
    expect(out).toContain('webhook received incident.opened');
    expect(out).toMatch(/slack received \[SEV2\] Incident opened, flag killed/);
    expect(out).toMatch(/webhook +incident\.opened +1 delivery, HMAC signature verified/);
    expect(out).toContain('# Postmortem: checkout-v2 (demo)');
    const saved = /saved to (\S+)\)/.exec(out)?.[1];
    expect(saved).toBeDefined();
    const file = join(cwd, saved as string);
    expect(existsSync(file)).toBe(true);
    expect(await readFile(file, 'utf8')).toContain('## Timeline');
  }, 200_000);

  it('refuses --url without a token, and bad options, with exit code 2', async () => {
    const noToken = await runDemo(['--url', 'http://127.0.0.1:1']);
    expect(noToken.code).toBe(2);
    expect(noToken.out).toContain('--url needs VIGIL_TOKEN');
    const badHold = await runDemo(['--hold', 'soon']);
    expect(badHold.code).toBe(2);
    expect(badHold.out).toContain('--hold must be a duration');
  });
});
