import { readFileSync } from 'node:fs';
import { AstBuilder, compile, GherkinClassicTokenMatcher, Parser } from '@cucumber/gherkin';
import { IdGenerator, type Pickle, type PickleStep } from '@cucumber/messages';

/** One runnable case: a scenario, or one example row of a scenario outline. */
export interface Case {
  /** `Scenario name`, or `Scenario name [Examples name: a | b | c]` for an example row. */
  name: string;
  /** The feature's, scenario's and examples' tags, without `@`. */
  tags: string[];
  steps: readonly PickleStep[];
}

/** Parses a feature file and compiles it to pickles (background steps included, outlines expanded). */
export function loadFeature(path: string): Case[] {
  const newId = IdGenerator.incrementing();
  const parser = new Parser(new AstBuilder(newId), new GherkinClassicTokenMatcher());
  const document = parser.parse(readFileSync(path, 'utf8'));
  const rows = new Map<string, string>();
  for (const child of document.feature?.children ?? []) {
    for (const examples of child.scenario?.examples ?? []) {
      for (const row of examples.tableBody) {
        const cells = row.cells.map((c) => c.value).join(' | ');
        rows.set(row.id, examples.name ? `${examples.name}: ${cells}` : cells);
      }
    }
  }
  return compile(document, path, newId).map((pickle: Pickle) => {
    const row = pickle.astNodeIds.length > 1 ? rows.get(pickle.astNodeIds[1]!) : undefined;
    return {
      name: row === undefined ? pickle.name : `${pickle.name} [${row}]`,
      tags: pickle.tags.map((t) => t.name.replace(/^@/, '')),
      steps: pickle.steps,
    };
  });
}
