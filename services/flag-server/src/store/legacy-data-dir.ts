import { readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { VigilError } from '../errors.js';
import { EmbeddedState, type JournalRecord, type SavedState } from './embedded-state.js';

/** The files of the data directory as the journal store (before SQLite) left it. */
export const LEGACY_FILES = ['snapshot.json', 'journal.jsonl'] as const;
/** The suffix a migrated legacy file is renamed with (kept, not deleted). */
export const MIGRATED_SUFFIX = '.migrated';

/** What reading a legacy data directory found. */
export interface LegacyData {
  state: SavedState;
  /** The files it read. */
  files: string[];
  /** Records replayed from the journal after the snapshot. */
  records: number;
  /** Set when the journal's last line was torn (a crash mid-append, never acknowledged) and left out. */
  droppedTail?: { file: string; bytes: number };
}

/**
 * Reads a data directory written by the journal store (`snapshot.json` plus `journal.jsonl`), or
 * undefined when it has neither. A damaged snapshot, or a damaged journal line before its last one,
 * throws `VIGIL_DATA_DIR_DAMAGED` naming the file; nothing is changed on disk.
 */
export async function readLegacyDataDir(dir: string, limits: { changeLog: number; audit: number }) {
  const snapshotPath = join(dir, LEGACY_FILES[0]);
  const journalPath = join(dir, LEGACY_FILES[1]);
  const snapshotText = await readOptional(snapshotPath);
  const journalText = await readOptional(journalPath);
  if (snapshotText === undefined && journalText === undefined) return undefined;
  const files: string[] = [];
  const state = new EmbeddedState(limits);
  let seq = 0;
  if (snapshotText !== undefined) {
    files.push(snapshotPath);
    let saved: { seq: number; state: SavedState };
    try {
      saved = JSON.parse(snapshotText) as { seq: number; state: SavedState };
    } catch (error) {
      throw damaged(snapshotPath, `not a complete snapshot (${(error as Error).message})`);
    }
    state.load(saved.state);
    seq = saved.seq;
  }
  const data: LegacyData = { state: state.save(), files, records: 0 };
  if (journalText !== undefined) {
    files.push(journalPath);
    const { lines, validBytes } = completeLines(journalText, journalPath);
    const total = Buffer.byteLength(journalText);
    if (validBytes < total) data.droppedTail = { file: journalPath, bytes: total - validBytes };
    for (const line of lines) {
      // Lines up to the snapshot's sequence were compacted into it already (a crash before truncation).
      if (line.seq <= seq) continue;
      state.apply(line.record as JournalRecord);
      seq = line.seq;
      data.records += 1;
    }
    data.state = state.save();
  }
  return data;
}

/** Keeps the migrated files beside the database under a new name, so a second start does not read them. */
export async function retireLegacyFiles(dir: string): Promise<string[]> {
  const moved: string[] = [];
  for (const name of LEGACY_FILES) {
    const path = join(dir, name);
    try {
      await rename(path, `${path}${MIGRATED_SUFFIX}`);
      moved.push(`${path}${MIGRATED_SUFFIX}`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  // The journal store's lock directory and compaction leftovers mean nothing any more.
  await rm(join(dir, 'LOCK'), { recursive: true, force: true });
  await rm(join(dir, `${LEGACY_FILES[0]}.tmp`), { force: true });
  return moved;
}

function damaged(file: string, what: string): VigilError {
  return new VigilError(
    'VIGIL_DATA_DIR_DAMAGED',
    `cannot migrate ${file}: ${what}; restore the file from a copy (or move it away to start without what it held)`,
    { file },
  );
}

/** Parses the journal's complete lines; a torn or unparsable last line is left out. */
function completeLines(
  text: string,
  path: string,
): { lines: { seq: number; record: unknown }[]; validBytes: number } {
  const lines: { seq: number; record: unknown }[] = [];
  let validBytes = 0;
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    if (end === -1) break;
    const raw = text.slice(start, end);
    let parsed: { seq: number; record: unknown } | undefined;
    try {
      parsed = JSON.parse(raw) as { seq: number; record: unknown };
    } catch {
      parsed = undefined;
    }
    if (!parsed || typeof parsed.seq !== 'number') {
      // Only the last line can be torn by a crash; garbage before good lines is damage.
      if (text.indexOf('\n', end + 1) !== -1)
        throw damaged(path, `corrupt journal line at byte ${validBytes}`);
      break;
    }
    lines.push(parsed);
    validBytes += Buffer.byteLength(raw) + 1;
    start = end + 1;
  }
  return { lines, validBytes };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
