import { rename, writeFile } from 'node:fs/promises';
import type { Incident } from '@vigil/proto';
import type { Api, IncidentAction, ScheduleAction } from './api.js';
import type { Config } from './config.js';
import { CliError, EXIT } from './errors.js';
import { formatFlag, formatFlagList, formatKillSwitch } from './format/flags.js';
import { formatHealth } from './format/health.js';
import { formatIncident, formatIncidentAction, formatIncidentList } from './format/incidents.js';
import { formatScheduleAction, formatScheduleStatus } from './format/schedule.js';

/** What a command works with. */
export interface Context {
  api: Api;
  config: Config;
  /** Epoch ms; read after the requests, so relative times are as of the answer. */
  now: () => number;
  /** True when the environment was chosen (--env or VIGIL_ENV), not just defaulted. */
  envChosen: boolean;
}

/** A command's result: the JSON document `--json` prints, and the text for people. */
export interface Output {
  json: unknown;
  text: string;
}

/**
 * A read made only to say what a write changed. An answer this CLI cannot read must not stand in the
 * way of the write (a kill at 3 a.m. matters more than its report), so that case yields undefined;
 * any other failure would hit the write too and is thrown as is.
 */
async function unlessUnreadable<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (error instanceof CliError && error.exitCode === EXIT.BAD_RESPONSE) return undefined;
    throw error;
  }
}

/** `vigil flags list`. */
export async function listFlags(ctx: Context): Promise<Output> {
  const list = await ctx.api.listFlags();
  return { json: list, text: formatFlagList(list, ctx.config.env, ctx.now()) };
}

/** `vigil flags get <flag>`. */
export async function getFlag(ctx: Context, key: string): Promise<Output> {
  const flag = await ctx.api.getFlag(key);
  return { json: flag, text: formatFlag(flag, ctx.config.env, ctx.now()) };
}

/** `vigil kill|revive <flag> --reason <text>`: the write, and what it changed. */
export async function setKill(ctx: Context, key: string, killed: boolean, reason: string): Promise<Output> {
  const before = await unlessUnreadable(ctx.api.getFlag(key));
  const after = await ctx.api.setKill(key, killed, reason);
  return { json: after, text: formatKillSwitch(killed, before, after, ctx.config.env, ctx.now()) };
}

/** `vigil schedule status <flag>`: the schedule and the guardian's gate that moves it. */
export async function scheduleStatus(ctx: Context, key: string): Promise<Output> {
  const [flag, health] = await Promise.all([ctx.api.getFlag(key), unlessUnreadable(ctx.api.health(key))]);
  return {
    json: {
      flag: flag.key,
      env: ctx.config.env,
      version: flag.version,
      killed: flag.killed,
      schedule: flag.schedule ?? null,
      health: health ?? null,
    },
    text: formatScheduleStatus(flag, health, ctx.config.env, ctx.now()),
  };
}

/** `vigil schedule pause|resume|abort <flag>`. */
export async function scheduleAction(
  ctx: Context,
  key: string,
  action: ScheduleAction,
  reason: string | undefined,
): Promise<Output> {
  const before = await unlessUnreadable(ctx.api.getFlag(key));
  const after = await ctx.api.scheduleAction(key, action, reason);
  return { json: after, text: formatScheduleAction(action, before, after, ctx.config.env, ctx.now()) };
}

/** `vigil health <flag>`. */
export async function health(ctx: Context, key: string): Promise<Output> {
  const result = await ctx.api.health(key);
  return { json: result, text: formatHealth(result, ctx.now()) };
}

/** `vigil incidents list`: every environment unless one was chosen. */
export async function listIncidents(
  ctx: Context,
  query: { status?: Incident['status']; limit?: number },
): Promise<Output> {
  const incidents = await ctx.api.listIncidents({
    ...query,
    ...(ctx.envChosen ? { env: ctx.config.env } : {}),
  });
  return { json: { incidents }, text: formatIncidentList(incidents, ctx.now()) };
}

/** `vigil incidents show <id>`. */
export async function showIncident(ctx: Context, id: string): Promise<Output> {
  const incident = await ctx.api.getIncident(id);
  return { json: incident, text: formatIncident(incident, ctx.now()) };
}

/** `vigil incidents ack|resolve <id> [--note]`. */
export async function incidentAction(
  ctx: Context,
  id: string,
  action: IncidentAction,
  note: string | undefined,
): Promise<Output> {
  const before = await unlessUnreadable(ctx.api.getIncident(id));
  const after = await ctx.api.incidentAction(id, action, note);
  return { json: after, text: formatIncidentAction(action, before, after) };
}

/** `vigil incidents postmortem <id>`: the Markdown draft, as is. */
export async function postmortem(ctx: Context, id: string): Promise<Output> {
  const markdown = await ctx.api.postmortem(id);
  return { json: { id, markdown }, text: markdown.replace(/\n+$/, '') };
}

/**
 * `vigil backup <file>`: the embedded store's database, copied by the server while it serves, written
 * to `file` (through a temporary file, so an interrupted backup never leaves a partial one there).
 */
export async function backup(ctx: Context, file: string): Promise<Output> {
  const bytes = await ctx.api.backup();
  const partial = `${file}.partial`;
  await writeFile(partial, bytes);
  await rename(partial, file);
  return {
    json: { file, bytes: bytes.byteLength },
    text: `backed up the store (${bytes.byteLength.toLocaleString('en-US')} bytes) to ${file}\nrestore: stop the server, then put this file in its data directory as vigil.db (docs/operations.md)`,
  };
}
