import type { ServerMessage } from '@vigil/proto';

/**
 * Light structural checks of what the flag server sends, in place of the zod schemas in `@vigil/proto`
 * where zod is too heavy (the browser bundle would triple). They check what evaluation relies on — the
 * shapes the compiler walks — and leave semantics (unknown variants, bad regexes) to the compiler, which
 * compiles them to their safest meaning. Each `…Issue` returns a reason, or undefined when the value is usable.
 */

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isRevision = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isStrArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);

function clauseIssue(c: unknown): string | undefined {
  if (!isObj(c) || !isStr(c.attribute) || !isStr(c.op) || !Array.isArray(c.values)) return 'bad clause';
  return undefined;
}

function serveIssue(s: unknown): string | undefined {
  if (!isObj(s)) return 'bad serve';
  if (isStr(s.variant)) return undefined;
  const r = s.rollout;
  if (!isObj(r) || !Array.isArray(r.weights)) return 'bad serve';
  for (const w of r.weights)
    if (!isObj(w) || !isStr(w.variant) || typeof w.weight !== 'number') return 'bad weight';
  if (r.bucketBy !== undefined && !isStr(r.bucketBy)) return 'bad bucketBy';
  if (r.exposure !== undefined && typeof r.exposure !== 'number') return 'bad exposure';
  return undefined;
}

/** Why a value is not a flag the core can compile, or undefined. */
export function flagIssue(f: unknown): string | undefined {
  if (!isObj(f) || !isStr(f.key)) return 'flag without a key';
  const at = `flag ${f.key}:`;
  if (!isRevision(f.version)) return `${at} bad version`;
  if (!Array.isArray(f.variants) || f.variants.length === 0) return `${at} no variants`;
  for (const v of f.variants) if (!isObj(v) || !isStr(v.key) || !('value' in v)) return `${at} bad variant`;
  if (!isStr(f.offVariant)) return `${at} bad offVariant`;
  if (typeof f.enabled !== 'boolean' || typeof f.killed !== 'boolean') return `${at} bad enabled/killed`;
  if (f.salt !== undefined && !isStr(f.salt)) return `${at} bad salt`;
  if (!Array.isArray(f.rules)) return `${at} bad rules`;
  for (const rule of f.rules) {
    if (!isObj(rule) || !isStr(rule.id) || !Array.isArray(rule.clauses)) return `${at} bad rule`;
    const issue = rule.clauses.map(clauseIssue).find(Boolean) ?? serveIssue(rule.serve);
    if (issue) return `${at} ${issue}`;
  }
  const fallthrough = serveIssue(f.fallthrough);
  if (fallthrough) return `${at} fallthrough: ${fallthrough}`;
  if (!Array.isArray(f.prerequisites)) return `${at} bad prerequisites`;
  for (const p of f.prerequisites)
    if (!isObj(p) || !isStr(p.flag) || !isStr(p.variant)) return `${at} bad prerequisite`;
  return undefined;
}

/** Why a value is not a segment the core can compile, or undefined. */
export function segmentIssue(s: unknown): string | undefined {
  if (!isObj(s) || !isStr(s.key)) return 'segment without a key';
  const at = `segment ${s.key}:`;
  if (!isRevision(s.version)) return `${at} bad version`;
  if (!isStrArray(s.included) || !isStrArray(s.excluded)) return `${at} bad included/excluded`;
  if (!Array.isArray(s.rules)) return `${at} bad rules`;
  for (const rule of s.rules) {
    if (!Array.isArray(rule)) return `${at} bad rule`;
    const issue = rule.map(clauseIssue).find(Boolean);
    if (issue) return `${at} ${issue}`;
  }
  return undefined;
}

/** Why a value is not a snapshot (`{ revision, flags, segments }`), or undefined. */
export function snapshotIssue(v: unknown): string | undefined {
  if (!isObj(v)) return 'not an object';
  if (!isRevision(v.revision)) return 'bad revision';
  if (!Array.isArray(v.flags) || !Array.isArray(v.segments)) return 'flags and segments must be arrays';
  return v.flags.map(flagIssue).find(Boolean) ?? v.segments.map(segmentIssue).find(Boolean);
}

/** Parses one text frame from the stream; throws an Error naming the problem when it is not a message. */
export function parseServerMessage(text: string): ServerMessage {
  const m: unknown = JSON.parse(text);
  if (!isObj(m) || !isStr(m.type)) throw new Error('message without a type');
  switch (m.type) {
    case 'snapshot': {
      const issue = snapshotIssue(m);
      if (issue) throw new Error(`snapshot: ${issue}`);
      return m as unknown as ServerMessage;
    }
    case 'patch': {
      const issue = snapshotIssue(m);
      if (issue) throw new Error(`patch: ${issue}`);
      const d = m.deleted;
      if (!isObj(d) || !isStrArray(d.flags) || !isStrArray(d.segments)) throw new Error('patch: bad deleted');
      return m as unknown as ServerMessage;
    }
    case 'error':
      if (!isStr(m.code) || !isStr(m.message)) throw new Error('error: bad code/message');
      return m as unknown as ServerMessage;
    case 'ping':
    case 'pong':
      if (m.at !== undefined && typeof m.at !== 'number') throw new Error(`${m.type}: bad at`);
      return m as unknown as ServerMessage;
    default:
      throw new Error(`unknown message type ${JSON.stringify(m.type).slice(0, 40)}`);
  }
}
