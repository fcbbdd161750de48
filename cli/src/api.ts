import {
  type Flag,
  type FlagHealth,
  flagHealthSchema,
  flagSchema,
  type Incident,
  incidentSchema,
  zodIssues,
} from '@vigil/proto';
import type { Config } from './config.js';
import { cliError } from './errors.js';
import { type HttpAnswer, type Method, request, snippet } from './http.js';

/** What `zodIssues` reads; the CLI depends on @vigil/proto only, not on zod itself. */
type SchemaError = Parameters<typeof zodIssues>[0];

/** A zod schema from @vigil/proto, as far as the client uses it. */
interface Schema<T> {
  safeParse(input: unknown): { success: true; data: T } | { success: false; error: SchemaError };
}

export interface FlagList {
  revision: number;
  flags: Flag[];
}

export type ScheduleAction = 'pause' | 'resume' | 'abort';
export type IncidentAction = 'ack' | 'resolve';

export interface IncidentQuery {
  env?: string;
  status?: Incident['status'];
  limit?: number;
}

const segment = encodeURIComponent;

function bodyJson(answer: HttpAnswer): unknown {
  try {
    return JSON.parse(answer.text);
  } catch {
    throw cliError(
      'VIGIL_CLI_BAD_RESPONSE',
      `the answer to ${answer.what} is not JSON${answer.text ? `: ${snippet(answer.text)}` : ''}`,
      { status: answer.status, hint: 'is --url / VIGIL_URL the flag server itself?' },
    );
  }
}

/** A bad-response error naming the fields that do not match the contract. */
function mismatch(answer: HttpAnswer, issues: { field: string; message: string }[]): Error {
  const shown = issues
    .slice(0, 5)
    .map((i) => `${i.field || '(body)'}: ${i.message}`)
    .join('; ');
  return cliError(
    'VIGIL_CLI_BAD_RESPONSE',
    `the answer to ${answer.what} does not match this CLI's contract (${shown}${issues.length > 5 ? '; …' : ''})`,
    {
      status: answer.status,
      details: issues,
      hint:
        answer.what.startsWith('POST') && answer.status < 300
          ? 'the server accepted the request (HTTP 2xx), so the change was most likely applied; check with a read command, and use a CLI of the server’s version'
          : 'use a CLI of the same Vigil version as the server',
    },
  );
}

function parse<T>(answer: HttpAnswer, schema: Schema<T>, value: unknown, prefix: PropertyKey[] = []): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw mismatch(answer, zodIssues(parsed.error, prefix));
  return parsed.data;
}

/** `{ <field>: [...] }` with each item parsed by `schema`. */
function parseListOf<T>(answer: HttpAnswer, field: string, schema: Schema<T>): { body: object; items: T[] } {
  const body = bodyJson(answer);
  const list =
    typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[field] : undefined;
  if (!Array.isArray(list)) throw mismatch(answer, [{ field, message: 'expected an array' }]);
  return { body: body as object, items: list.map((item, i) => parse(answer, schema, item, [field, i])) };
}

/**
 * The typed REST client of the ops commands: one method per route, every answer checked against the
 * @vigil/proto schema of its shape, so a server of another version fails clearly instead of printing
 * nonsense. Flag routes address `config.env`.
 */
export class Api {
  constructor(private readonly config: Config) {}

  private flagPath(key: string, rest = ''): string {
    return `api/v1/envs/${segment(this.config.env)}/flags/${segment(key)}${rest}`;
  }

  private async json<T>(method: Method, path: string, schema: Schema<T>, body?: unknown): Promise<T> {
    const answer = await request(this.config, method, path, body);
    return parse(answer, schema, bodyJson(answer));
  }

  /** `GET /envs/{env}/flags`: every flag, sorted by key, and the environment's revision. */
  async listFlags(): Promise<FlagList> {
    const answer = await request(this.config, 'GET', `api/v1/envs/${segment(this.config.env)}/flags`);
    const { body, items } = parseListOf(answer, 'flags', flagSchema);
    const revision = (body as { revision?: unknown }).revision;
    if (typeof revision !== 'number' || !Number.isInteger(revision) || revision < 0)
      throw mismatch(answer, [{ field: 'revision', message: 'expected a whole number' }]);
    return { revision, flags: items };
  }

  /** `GET /envs/{env}/flags/{key}`. */
  getFlag(key: string): Promise<Flag> {
    return this.json('GET', this.flagPath(key), flagSchema);
  }

  /** `POST /envs/{env}/flags/{key}/kill|revive` with the reason for the audit log. */
  setKill(key: string, killed: boolean, reason: string): Promise<Flag> {
    return this.json('POST', this.flagPath(key, killed ? '/kill' : '/revive'), flagSchema, { reason });
  }

  /** `POST /envs/{env}/flags/{key}/schedule/{pause|resume|abort}`. */
  scheduleAction(key: string, action: ScheduleAction, reason?: string): Promise<Flag> {
    return this.json(
      'POST',
      this.flagPath(key, `/schedule/${action}`),
      flagSchema,
      reason === undefined ? {} : { reason },
    );
  }

  /** `GET /envs/{env}/flags/{key}/health`: the guardian's verdict on the current version. */
  health(key: string): Promise<FlagHealth> {
    return this.json('GET', this.flagPath(key, '/health'), flagHealthSchema);
  }

  /** `GET /incidents`, newest first. */
  async listIncidents(query: IncidentQuery): Promise<Incident[]> {
    const params = new URLSearchParams();
    if (query.env !== undefined) params.set('env', query.env);
    if (query.status !== undefined) params.set('status', query.status);
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    const search = params.size > 0 ? `?${params}` : '';
    const answer = await request(this.config, 'GET', `api/v1/incidents${search}`);
    return parseListOf(answer, 'incidents', incidentSchema).items;
  }

  /** `GET /incidents/{id}` with its timeline. */
  getIncident(id: string): Promise<Incident> {
    return this.json('GET', `api/v1/incidents/${segment(id)}`, incidentSchema);
  }

  /** `POST /incidents/{id}/ack|resolve` with an optional note for the timeline. */
  incidentAction(id: string, action: IncidentAction, note?: string): Promise<Incident> {
    return this.json(
      'POST',
      `api/v1/incidents/${segment(id)}/${action}`,
      incidentSchema,
      note === undefined ? {} : { note },
    );
  }

  /** `POST /backup`: the embedded store's database file, consistent at one instant. */
  async backup(): Promise<Uint8Array> {
    const answer = await request(this.config, 'POST', 'api/v1/backup');
    if (!answer.contentType.startsWith('application/vnd.sqlite3'))
      throw cliError('VIGIL_CLI_BAD_RESPONSE', `the answer to ${answer.what} is not a database file`, {
        status: answer.status,
        hint: 'is --url / VIGIL_URL the flag server itself?',
      });
    return answer.bytes;
  }

  /** `GET /incidents/{id}/postmortem`: the Markdown draft. */
  async postmortem(id: string): Promise<string> {
    const answer = await request(this.config, 'GET', `api/v1/incidents/${segment(id)}/postmortem`);
    if (!answer.contentType.startsWith('text/markdown'))
      throw mismatch(answer, [
        { field: 'content-type', message: `expected text/markdown, got "${answer.contentType}"` },
      ]);
    return answer.text;
  }
}
