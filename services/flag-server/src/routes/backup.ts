import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { principalOf } from '../auth.js';
import { VigilError } from '../errors.js';
import { AUTH_ERRORS, errors } from '../openapi.js';
import { canBackup, type Store } from '../store/store.js';

/**
 * `POST /api/v1/backup` (admin tokens not bound to an environment): the embedded store's database,
 * copied consistently while the server keeps serving (SQLite's online backup), as the response body.
 * A Redis store is backed up by Redis itself (RDB snapshots or the AOF), so it answers 409.
 */
export async function backupRoutes(app: FastifyInstance, options: { store: Store }): Promise<void> {
  const { store } = options;
  app.post(
    '/backup',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['backup'],
        summary: "A consistent copy of the embedded store's database, taken while the server serves",
        description:
          'The SQLite file (`vigil.db`) as of one instant, for `vigil backup <file>`; restore it by stopping the ' +
          'server and putting the file in its data directory ([operations.md](operations.md#backups)).',
        response: {
          200: {
            description: 'The database file, as `application/vnd.sqlite3`',
            content: { 'application/vnd.sqlite3': { schema: { type: 'string', format: 'binary' } } },
          },
          ...errors(
            'VIGIL_BAD_REQUEST',
            ...AUTH_ERRORS,
            [
              'VIGIL_INVALID_STATE',
              "the server runs on the Redis store, which Redis's own persistence (RDB, AOF) backs up.",
            ],
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      if (!canBackup(store))
        throw new VigilError(
          'VIGIL_INVALID_STATE',
          `the ${store.kind} store is backed up by Redis itself (RDB snapshots or the AOF), not through Vigil`,
        );
      const dir = await mkdtemp(join(tmpdir(), 'vigil-backup-'));
      const file = join(dir, 'vigil.db');
      try {
        await store.backup(file);
      } catch (error) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
      const { size } = await stat(file);
      request.log.info({ actor: principalOf(request).name, bytes: size }, 'backup taken');
      const body = createReadStream(file);
      body.once('close', () => void rm(dir, { recursive: true, force: true }));
      return reply
        .type('application/vnd.sqlite3')
        .header('content-length', size)
        .header('content-disposition', 'attachment; filename="vigil.db"')
        .send(body);
    },
  );
}
