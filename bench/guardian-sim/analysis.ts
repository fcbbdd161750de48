import type { CohortSummary, Flag } from '@vigil/proto';

/*
 * The slice of the guardian's analysis API (services/guardian/src/analysis) the simulation drives.
 * bench/tsconfig.json roots the bench's sources at bench/, so a static import of the guardian's sources
 * would not type-check here; the module is loaded at run time and typed by this slice instead. Once
 * bench depends on @vigil/guardian, `import { CohortAnalyzer } from '@vigil/guardian'` replaces this file.
 */

export interface SimCheck {
  trigger: string;
  status: 'pass' | 'fail' | 'insufficient_data' | 'shared_breach';
  pValue: number;
}

export interface SimVerdict {
  status: 'healthy' | 'regression' | 'insufficient_data';
  kill: boolean;
  triggers: string[];
  variants: { checks: SimCheck[] }[];
}

export interface SimAnalyzer {
  readonly config: {
    alpha: number;
    thresholdAlpha: number;
    latencyMargin: number;
    epochMs: number;
    minLatencyReference: number;
  };
  readonly defaults: {
    severity: string;
    triggers: {
      maxErrorRate: number;
      maxP99LatencyMs: number;
      minSuccessRate: number;
      consecutiveFailures: number;
    };
    minSamples: number;
  };
  ingest(summary: CohortSummary): boolean;
  evaluate(env: string, flag: Flag, now: number): SimVerdict;
}

export interface SimAnalysisModule {
  CohortAnalyzer: new (options?: { config?: Record<string, unknown> }) => SimAnalyzer;
}

/** Loads the guardian's analysis module from its TypeScript sources (run under tsx). */
export async function loadAnalysis(): Promise<SimAnalysisModule> {
  const url = new URL('../../services/guardian/src/analysis/index.ts', import.meta.url);
  return (await import(url.href)) as SimAnalysisModule;
}

/** Comparison triggers, whose level is the configurable alpha the frontier varies. */
export const COMPARISON_TRIGGERS: ReadonlySet<string> = new Set([
  'error_rate_vs_control',
  'latency_vs_control',
]);
