import type { CliError } from '../errors.js';

function isFieldIssue(value: unknown): value is { field: string; message: string } {
  const v = value as { field?: unknown; message?: unknown } | null;
  return typeof v?.field === 'string' && typeof v.message === 'string';
}

/**
 * An error for people, on stderr: `vigil: CODE (HTTP status): message`, the bad fields when the
 * server named them, then what to do about it.
 */
export function formatError(error: CliError): string {
  const status = error.status === undefined ? '' : ` (HTTP ${error.status})`;
  const lines = [`vigil: ${error.code}${status}: ${error.message}`];
  const { details } = error;
  if (Array.isArray(details) && details.every(isFieldIssue)) {
    for (const issue of details.slice(0, 20)) lines.push(`  - ${issue.field || '(body)'}: ${issue.message}`);
    if (details.length > 20) lines.push(`  - … ${details.length - 20} more`);
  } else if (details !== undefined && !error.code.startsWith('VIGIL_CLI_')) {
    lines.push(`  details: ${JSON.stringify(details)}`);
  }
  if (error.hint) lines.push(`  hint: ${error.hint}`);
  return `${lines.join('\n')}\n`;
}
