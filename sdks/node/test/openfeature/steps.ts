import type { PickleStep } from '@cucumber/messages';
import {
  type Client,
  type EvaluationContext,
  type EvaluationDetails,
  type FlagValue,
  type Hook,
  type JsonValue,
  OpenFeature,
} from '@openfeature/server-sdk';
import { expect } from 'vitest';
import type { VigilProvider } from '../../src/openfeature.js';

type FlagType = 'boolean' | 'string' | 'integer' | 'float' | 'object';
type Stage = 'before' | 'after' | 'error' | 'finally';

/** The state one case's steps share. */
export class World {
  client: Client | undefined;
  flag: { type: FlagType; key: string; fallback: FlagValue } | undefined;
  context: EvaluationContext = {};
  details: EvaluationDetails<FlagValue> | undefined;
  pending: Promise<EvaluationDetails<FlagValue>> | undefined;
  readonly hookCalls: { stage: Stage; details?: EvaluationDetails<FlagValue> }[] = [];

  constructor(
    readonly domain: string,
    private readonly makeProvider: () => VigilProvider,
  ) {}

  async stableProvider(): Promise<void> {
    await OpenFeature.setProviderAndWait(this.domain, this.makeProvider());
    this.client = OpenFeature.getClient(this.domain);
  }

  evaluate(): Promise<EvaluationDetails<FlagValue>> {
    const client = this.client;
    const flag = this.flag;
    if (!client || !flag) throw new Error('no provider or no flag given before evaluating');
    const { key, fallback } = flag;
    switch (flag.type) {
      case 'boolean':
        return client.getBooleanDetails(key, fallback as boolean, this.context);
      case 'string':
        return client.getStringDetails(key, fallback as string, this.context);
      case 'integer':
      case 'float':
        return client.getNumberDetails(key, fallback as number, this.context);
      case 'object':
        return client.getObjectDetails(key, fallback as JsonValue, this.context);
    }
  }

  get result(): EvaluationDetails<FlagValue> {
    if (!this.details) throw new Error('the flag was not evaluated');
    return this.details;
  }

  /** A hook recording every stage it runs in, with the evaluation details it is given. */
  recordingHook(): Hook {
    return {
      before: () => {
        this.hookCalls.push({ stage: 'before' });
      },
      after: (_context, details) => {
        this.hookCalls.push({ stage: 'after', details });
      },
      error: () => {
        this.hookCalls.push({ stage: 'error' });
      },
      finally: (_context, details) => {
        this.hookCalls.push({ stage: 'finally', details });
      },
    };
  }
}

/** Step arguments are quoted in the feature files with `\"` for a literal quote. */
const unquote = (text: string): string => text.replace(/\\"/g, '"');

function flagType(name: string): FlagType {
  const type = name.toLowerCase();
  if (!['boolean', 'string', 'integer', 'float', 'object'].includes(type)) {
    throw new Error(`unknown flag type ${name}`);
  }
  return type as FlagType;
}

/** A value written in a feature file, read as the given type. */
function typed(type: FlagType, text: string): FlagValue {
  switch (type) {
    case 'boolean':
      if (text !== 'true' && text !== 'false') throw new Error(`not a boolean: ${text}`);
      return text === 'true';
    case 'string':
      return text;
    case 'integer':
      return Number.parseInt(text, 10);
    case 'float':
      return Number.parseFloat(text);
    case 'object':
      return JSON.parse(text) as JsonValue;
  }
}

/** A data table as rows of named cells (the first row names the columns). */
function table(step: PickleStep): Record<string, string>[] {
  const rows = step.argument?.dataTable?.rows.map((r) => r.cells.map((c) => c.value));
  if (!rows || rows.length === 0) throw new Error(`step "${step.text}" needs a data table`);
  const [header, ...body] = rows;
  return body.map((cells) => Object.fromEntries(header!.map((name, i) => [name, cells[i] ?? ''])));
}

type StepFn = (world: World, match: RegExpExecArray, step: PickleStep) => void | Promise<void>;

/** Step definitions for evaluation_v2.feature, metadata.feature and hooks.feature (the tags run). */
const STEPS: [RegExp, StepFn][] = [
  [/^a stable provider$/, (w) => w.stableProvider()],
  [
    /^a (\w+)-flag with key "(.*)" and a fallback value "(.*)"$/,
    (w, [, type, key, fallback]) => {
      const t = flagType(type!);
      w.flag = { type: t, key: key!, fallback: typed(t, unquote(fallback!)) };
    },
  ],
  [
    /^a context containing a key "(.*)", with type "(\w+)" and with value "(.*)"$/,
    (w, [, key, type, value]) => {
      w.context = { ...w.context, [key!]: typed(flagType(type!), unquote(value!)) as string };
    },
  ],
  [
    /^a context containing a key "(.*)" with null value$/,
    (w, [, key]) => {
      // EvaluationContext's type has no null, but callers (and the spec) do pass it.
      w.context = { ...w.context, [key!]: null as unknown as string };
    },
  ],
  [
    /^the flag was evaluated with details$/,
    async (w) => {
      w.details = await w.evaluate();
    },
  ],
  [
    /^the flag was evaluated with details asynchronously$/,
    (w) => {
      w.pending = w.evaluate();
      expect(w.pending).toBeInstanceOf(Promise);
    },
  ],
  [
    /^the evaluation should complete without blocking$/,
    async (w) => {
      if (!w.pending) throw new Error('nothing is being evaluated');
      w.details = await w.pending;
    },
  ],
  [
    /^the resolved details value should be "(.*)"$/,
    (w, [, value]) => {
      expect(w.result.value).toEqual(typed(w.flag!.type, unquote(value!)));
    },
  ],
  [/^the reason should be "(.*)"$/, (w, [, reason]) => expect(w.result.reason).toBe(reason)],
  [/^the error-code should be "(.*)"$/, (w, [, code]) => expect(w.result.errorCode).toBe(code)],
  [/^the flag key should be "(.*)"$/, (w, [, key]) => expect(w.result.flagKey).toBe(key)],
  [/^the variant should be "(.*)"$/, (w, [, variant]) => expect(w.result.variant).toBe(variant)],
  [
    /^the resolved metadata should contain$/,
    (w, _m, step) => {
      for (const row of table(step)) {
        expect(w.result.flagMetadata[row.key!], row.key).toStrictEqual(
          typed(flagType(row.metadata_type!), row.value!),
        );
      }
    },
  ],
  [/^the resolved metadata is empty$/, (w) => expect(w.result.flagMetadata).toStrictEqual({})],
  [
    /^a client with added hook$/,
    (w) => {
      if (!w.client) throw new Error('no client');
      w.client.addHooks(w.recordingHook());
    },
  ],
  [
    /^the "(\w+)" hook should have been executed$/,
    (w, [, stage]) => {
      expect(w.hookCalls.map((c) => c.stage)).toContain(stage);
    },
  ],
  [
    /^the "(.*)" hooks should be called with evaluation details$/,
    (w, [, stages], step) => {
      for (const stage of stages!.split(',').map((s) => s.trim())) {
        const calls = w.hookCalls.filter((c) => c.stage === stage);
        expect(calls, `${stage} hook calls`).toHaveLength(1);
        const details = calls[0]!.details!;
        const fields: Record<string, unknown> = {
          flag_key: details.flagKey,
          value: details.value,
          variant: details.variant,
          reason: details.reason,
          error_code: details.errorCode,
        };
        for (const row of table(step)) {
          const expected = row.value === 'null' ? undefined : typed(flagType(row.data_type!), row.value!);
          expect(fields[row.key!], `${stage}: ${row.key}`).toStrictEqual(expected);
        }
      }
    },
  ],
];

/** Runs one step against its definition; a step without one fails the case. */
export async function runStep(world: World, step: PickleStep): Promise<void> {
  for (const [pattern, fn] of STEPS) {
    const match = pattern.exec(step.text);
    if (match) {
      await fn(world, match, step);
      return;
    }
  }
  throw new Error(`no step definition for "${step.text}"`);
}
