import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');
/** What `pnpm start` runs: the flag server and the guardian in one process, on the embedded store. */
const ALL_IN_ONE = join(repoRoot, 'services/guardian/src/all-in-one.ts');

/** A Vigil the demo started for itself. */
export interface VigilProcess {
  url: string;
  adminToken: string;
  dataDir: string;
  /** What the process printed (stdout and stderr), for error messages. */
  output(): string;
  /** Stops it (SIGTERM, SIGKILL after 10 s) and removes its data unless `keepData`. */
  stop(keepData?: boolean): Promise<void>;
}

/** Whether this checkout has the sources `startVigil` runs (false in a deployed demo image). */
export function canStartVigil(): boolean {
  return existsSync(ALL_IN_ONE);
}

/**
 * Starts Vigil exactly as `pnpm start` does — flag server and guardian in one process on the embedded
 * store — on a free port and a fresh data directory, with a known admin token and the guardian's
 * webhook and Slack integrations pointed at the demo's receiver.
 */
export async function startVigil(notify: { webhookUrl: string; slackUrl: string; secret: string }) {
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-demo-'));
  const adminToken = `vgl_demo_${randomBytes(18).toString('hex')}`;
  const child: ChildProcess = spawn(
    process.execPath,
    ['--conditions=@vigil/source', '--import', 'tsx', ALL_IN_ONE],
    {
      cwd: repoRoot,
      env: {
        ...process.env,
        VIGIL_PORT: '0',
        VIGIL_DATA_DIR: dataDir,
        VIGIL_ADMIN_TOKEN: adminToken,
        VIGIL_LOG_LEVEL: 'warn',
        VIGIL_WEBHOOK_URL: notify.webhookUrl,
        VIGIL_WEBHOOK_SECRET: notify.secret,
        VIGIL_SLACK_WEBHOOK_URL: notify.slackUrl,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (keepData = false) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (!keepData) await rm(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 60_000;
  for (;;) {
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
    // The guardian starts after the server prints its URL; its line says the system is whole.
    if (url && out.includes('Guardian running')) {
      return { url, adminToken, dataDir, output: () => out, stop } satisfies VigilProcess;
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`Vigil did not start (exit ${child.exitCode}):\n${out}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
