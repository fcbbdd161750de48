import { INCIDENT_STATUSES, type Incident } from '@vigil/proto';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { Api } from './api.js';
import * as commands from './commands.js';
import {
  checkKey,
  DEFAULT_ENV,
  DEFAULT_TIMEOUT,
  DEFAULT_URL,
  type GlobalOptions,
  resolveConfig,
} from './config.js';
import { cliError, EXIT, toCliError } from './errors.js';
import { formatError } from './format/errors.js';
import { CLI_VERSION } from './http.js';

/** The process's outside world, injectable so the wiring can run without one. */
export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  environ: NodeJS.ProcessEnv;
  now: () => number;
}

const HELP_FOOTER = `
Environment:
  VIGIL_TOKEN    the API token (required; never taken on the command line). Reads need
                 the read scope; kill, revive, schedules and incidents need ops.
  VIGIL_URL      the flag server (default for --url)
  VIGIL_ENV      the environment (default for --env)
  VIGIL_TIMEOUT  per-request timeout (default for --timeout)

Exit codes:
  0  done (also when an idempotent action found nothing to change)
  1  the server refused; its VIGIL_* code and message are printed
  2  usage or configuration error (unknown command, missing VIGIL_TOKEN, bad URL)
  3  cannot reach the server (connection refused, DNS, timeout)
  4  the answer is not what this CLI understands (wrong URL, or another Vigil version)

Examples:
  vigil flags list
  vigil kill checkout-v2 --reason "checkout 5xx since the 02:40 deploy"
  vigil revive checkout-v2 --reason "fix deployed"
  vigil incidents list --status open
  vigil incidents ack inc_8f2k --note "looking"
  vigil backup vigil-$(date +%F).db
`;

function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > max)
      throw new InvalidArgumentError(`a whole number from 1 to ${max}`);
    return n;
  };
}

function checkIncidentId(id: string): string {
  if (id.length === 0 || id.length > 128)
    throw cliError('VIGIL_CLI_BAD_OPTION', `incident id "${id}" must be 1 to 128 characters`);
  return id;
}

/**
 * The `vigil` command tree. Every action resolves its configuration (URL, environment, token) only
 * when it runs, so `--help` works without a token, and prints one JSON document or text on stdout.
 */
export function buildProgram(io: Io): Command {
  const program = new Command('vigil');
  program
    .description(
      'Operate Vigil feature flags over REST: flags, the kill switch, schedules, guardian health, incidents.',
    )
    .version(CLI_VERSION, '-V, --version')
    .addOption(new Option('--url <url>', 'flag server base URL').env('VIGIL_URL').default(DEFAULT_URL))
    .addOption(new Option('-e, --env <env>', 'environment').env('VIGIL_ENV').default(DEFAULT_ENV))
    .addOption(
      new Option('--timeout <duration>', 'per-request timeout: seconds, or 500ms, 30s, 1m')
        .env('VIGIL_TIMEOUT')
        .default(DEFAULT_TIMEOUT),
    )
    .option('--json', 'print one JSON document on stdout (errors as JSON on stderr)')
    .addOption(new Option('--token <token>').hideHelp())
    // Inherited by every subcommand defined below: errors come back to runCli instead of exiting.
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', HELP_FOOTER);

  const act =
    (
      handler: (
        ctx: commands.Context,
        args: string[],
        opts: Record<string, unknown>,
      ) => Promise<commands.Output>,
    ) =>
    async (...params: unknown[]): Promise<void> => {
      const command = params[params.length - 1] as Command;
      const opts = params[params.length - 2] as Record<string, unknown>;
      const args = params.slice(0, -2) as string[];
      const config = resolveConfig(command.optsWithGlobals<GlobalOptions>(), io.environ);
      const ctx: commands.Context = {
        api: new Api(config),
        config,
        now: io.now,
        envChosen: command.getOptionValueSourceWithGlobals('env') !== 'default',
      };
      const output = await handler(ctx, args, opts);
      io.stdout(config.json ? `${JSON.stringify(output.json, null, 2)}\n` : `${output.text}\n`);
    };
  const flagArg = (args: string[]) => checkKey('flag', args[0]!);

  const flags = program.command('flags').description('read flags');
  flags
    .command('list')
    .description('every flag of the environment: state (on, off, KILLED), version, what it serves, schedule')
    .action(act((ctx) => commands.listFlags(ctx)));
  flags
    .command('get')
    .argument('<flag>', 'flag key')
    .description('one flag in full: kill switch, rules, schedule, guard')
    .action(act((ctx, args) => commands.getFlag(ctx, flagArg(args))));

  for (const killed of [true, false]) {
    program
      .command(killed ? 'kill' : 'revive')
      .argument('<flag>', 'flag key')
      .requiredOption('-r, --reason <text>', 'why (recorded in the audit log)')
      .description(
        killed
          ? "kill switch: serve the flag's offVariant to everyone now (idempotent)"
          : 'undo a kill: serve exactly what the flag served before it (idempotent)',
      )
      .action(act((ctx, args, opts) => commands.setKill(ctx, flagArg(args), killed, String(opts.reason))));
  }

  const schedule = program.command('schedule').description('progressive rollouts');
  schedule
    .command('status')
    .argument('<flag>', 'flag key')
    .description("a flag's schedule: steps, the one in force, its hold, the guardian's gate")
    .action(act((ctx, args) => commands.scheduleStatus(ctx, flagArg(args))));
  for (const action of ['pause', 'resume', 'abort'] as const) {
    schedule
      .command(action)
      .argument('<flag>', 'flag key')
      .option('-r, --reason <text>', 'why (recorded in the audit log)')
      .description(
        action === 'pause'
          ? 'hold the schedule at its step, keeping the hold left (idempotent)'
          : action === 'resume'
            ? 'continue a paused schedule with the hold that was left (idempotent)'
            : 'stop the schedule for good; the flag keeps serving what it serves now (idempotent)',
      )
      .action(
        act((ctx, args, opts) =>
          commands.scheduleAction(ctx, flagArg(args), action, opts.reason as string | undefined),
        ),
      );
  }

  program
    .command('health')
    .argument('<flag>', 'flag key')
    .description("the guardian's verdict on the flag's current version: gate, triggers, cohorts")
    .action(act((ctx, args) => commands.health(ctx, flagArg(args))));

  const incidents = program.command('incidents').description('incidents the guardian opened');
  incidents
    .command('list')
    .description('incidents, newest first (of every environment unless --env or VIGIL_ENV is set)')
    .addOption(new Option('-s, --status <status>', 'only this status').choices(INCIDENT_STATUSES))
    .addOption(new Option('-n, --limit <n>', 'at most this many (1-500)').argParser(positiveInt(500)))
    .action(
      act((ctx, _args, opts) =>
        commands.listIncidents(ctx, {
          ...(opts.status === undefined ? {} : { status: opts.status as Incident['status'] }),
          ...(opts.limit === undefined ? {} : { limit: opts.limit as number }),
        }),
      ),
    );
  incidents
    .command('show')
    .argument('<id>', 'incident id')
    .description('one incident: figures at detection, times to detect/mitigate/resolve, timeline')
    .action(act((ctx, args) => commands.showIncident(ctx, checkIncidentId(args[0]!))));
  for (const action of ['ack', 'resolve'] as const) {
    incidents
      .command(action)
      .argument('<id>', 'incident id')
      .option('-m, --note <text>', 'a note for the timeline')
      .description(
        action === 'ack'
          ? 'acknowledge: you are on it; escalation stops (idempotent)'
          : 'resolve: ends the episode and resolves it downstream; does not revive the flag (idempotent)',
      )
      .action(
        act((ctx, args, opts) =>
          commands.incidentAction(ctx, checkIncidentId(args[0]!), action, opts.note as string | undefined),
        ),
      );
  }
  program
    .command('backup')
    .argument('<file>', 'where to write the copy (a SQLite database)')
    .description("copy the embedded store's database while the server serves (admin token)")
    .action(act((ctx, args) => commands.backup(ctx, args[0]!)));

  incidents
    .command('postmortem')
    .argument('<id>', 'incident id')
    .description('the drafted postmortem, as Markdown')
    .action(act((ctx, args) => commands.postmortem(ctx, checkIncidentId(args[0]!))));

  return program;
}

/** Runs the CLI on `argv` (as `process.argv`) and resolves with the exit code. */
export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return EXIT.OK;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      // Commander has already printed the help, the version or what is wrong with the command line.
      return thrown.code === 'commander.helpDisplayed' || thrown.code === 'commander.version'
        ? EXIT.OK
        : EXIT.USAGE;
    }
    const error = toCliError(thrown);
    if (program.opts().json === true) io.stderr(`${JSON.stringify({ error: error.toJSON() })}\n`);
    else io.stderr(formatError(error));
    return error.exitCode;
  }
}
