import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { type OpenApiDocument, REST_DOCS_PATH, renderRestDocs, servedOpenApi } from '../scripts/rest-docs.js';

describe('docs/rest-api.md', () => {
  let doc: OpenApiDocument;

  beforeAll(async () => {
    doc = await servedOpenApi();
  });

  it('is what the generator renders from the OpenAPI document the server serves now', async () => {
    const current = await readFile(REST_DOCS_PATH, 'utf8').catch(() => '');
    expect(current, 'docs/rest-api.md is out of date: run pnpm docs:api').toBe(renderRestDocs(doc));
  });

  it('documents every operation with a tag, a summary, who may call it and described responses', () => {
    const tags = new Set((doc.tags ?? []).map((t) => t.name));
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(op.tags?.length, `${where}: tag`).toBe(1);
        expect(tags.has(op.tags![0]!), `${where}: tag ${op.tags![0]} is listed in the document's tags`).toBe(
          true,
        );
        expect(op.summary, `${where}: summary`).toBeTruthy();
        expect(op.security, `${where}: security`).toBeDefined();
        // Every operation but the public probes says its access level, and with it its scopes.
        if ((op.security ?? []).length > 0)
          expect(op['x-vigil-scopes']?.length, `${where}: scopes`).toBeGreaterThan(0);
        for (const [status, response] of Object.entries(op.responses ?? {})) {
          expect(response.description, `${where} ${status}: description`).toBeTruthy();
          expect(response.description, `${where} ${status}: description`).not.toBe('Default Response');
        }
      }
    }
  });

  it('is deterministic', async () => {
    expect(renderRestDocs(await servedOpenApi())).toBe(renderRestDocs(doc));
  });
});
