import { parentPort } from 'node:worker_threads';
import { loadAnalysis } from './analysis.js';
import { type RunResult, runOnce } from './engine.js';
import { scenarios } from './scenarios.js';

/** A slice of one scenario's runs. */
export interface Job {
  scenario: string;
  from: number;
  to: number;
  config: Record<string, unknown>;
}

export interface JobDone {
  job: Job;
  results: RunResult[];
}

const port = parentPort;
if (port === null) throw new Error('guardian-sim/worker.ts runs as a worker thread');
const mod = await loadAnalysis();
const byId = new Map(scenarios().map((s) => [s.id, s]));

port.on('message', (job: Job | null) => {
  if (job === null) {
    port.close();
    return;
  }
  const scenario = byId.get(job.scenario);
  if (scenario === undefined) throw new Error(`unknown scenario ${job.scenario}`);
  const results: RunResult[] = [];
  for (let run = job.from; run < job.to; run++) results.push(runOnce(mod, scenario, run, job.config));
  port.postMessage({ job, results } satisfies JobDone);
});
