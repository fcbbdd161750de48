import {
  type Flag,
  type FlagHealth,
  type FlagInput,
  flagHealthSchema,
  flagSchema,
  type Incident,
  incidentSchema,
  type ScheduleStep,
} from '@vigil/proto';
import type { z } from 'zod';

/** A refused or failed admin request, with the server's stable error code when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The admin REST calls the demo makes, authenticated with one admin (or ops + read) token. */
export class AdminApi {
  constructor(
    readonly url: string,
    private readonly token: string,
    readonly env: string,
  ) {}

  /** Creates an SDK key bound to the demo's environment and returns its secret. */
  async createSdkKey(name: string): Promise<string> {
    const body = await this.call('POST', '/api/v1/tokens', { name, scopes: ['sdk-server'], env: this.env });
    return (body as { secret: string }).secret;
  }

  async getFlag(key: string): Promise<Flag | undefined> {
    try {
      return this.parse(flagSchema, await this.call('GET', this.flagPath(key)));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** Creates or replaces a flag. */
  async putFlag(flag: FlagInput, reason: string): Promise<Flag> {
    return this.parse(flagSchema, await this.call('PUT', this.flagPath(flag.key), flag, reason));
  }

  async revive(key: string, reason: string): Promise<Flag> {
    return this.parse(flagSchema, await this.call('POST', `${this.flagPath(key)}/revive`, { reason }));
  }

  async putSchedule(key: string, variant: string, steps: ScheduleStep[]): Promise<Flag> {
    const body = await this.call('PUT', `${this.flagPath(key)}/schedule`, { variant, steps });
    return this.parse(flagSchema, body);
  }

  async health(key: string): Promise<FlagHealth> {
    return this.parse(flagHealthSchema, await this.call('GET', `${this.flagPath(key)}/health`));
  }

  /** The environment's incidents, newest first. */
  async incidents(): Promise<Incident[]> {
    const body = (await this.call('GET', `/api/v1/incidents?env=${this.env}&limit=20`)) as {
      incidents: unknown[];
    };
    return body.incidents.map((incident) => this.parse(incidentSchema, incident));
  }

  async postmortem(id: string): Promise<string> {
    return (await this.call('GET', `/api/v1/incidents/${encodeURIComponent(id)}/postmortem`)) as string;
  }

  private flagPath(key: string): string {
    return `/api/v1/envs/${this.env}/flags/${encodeURIComponent(key)}`;
  }

  private parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
    const parsed = schema.safeParse(body);
    if (!parsed.success)
      throw new ApiError(
        200,
        'VIGIL_DEMO_UNEXPECTED_RESPONSE',
        `unexpected response: ${parsed.error.message}`,
      );
    return parsed.data;
  }

  private async call(method: string, path: string, body?: unknown, reason?: string): Promise<unknown> {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(reason === undefined ? {} : { 'x-vigil-reason': reason }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    const json = response.headers.get('content-type')?.includes('json') && text ? JSON.parse(text) : text;
    if (!response.ok) {
      const error = (json as { error?: { code?: string; message?: string } }).error;
      throw new ApiError(
        response.status,
        error?.code ?? `HTTP_${response.status}`,
        `${method} ${path}: ${error?.message ?? response.statusText}`,
      );
    }
    return json;
  }
}
