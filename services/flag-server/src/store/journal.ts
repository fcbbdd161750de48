import type { FileHandle } from 'node:fs/promises';
import { open, readFile, rename, truncate } from 'node:fs/promises';
import { join } from 'node:path';

const SNAPSHOT = 'snapshot.json';
const JOURNAL = 'journal.jsonl';

/** What a data directory held at start: the last snapshot and the records written after it. */
export interface Recovered<S, R> {
  snapshot: S | undefined;
  records: R[];
}

/**
 * A write-ahead journal under a data directory: each record is one JSON line, fsynced before
 * `append` resolves, and the whole state is periodically compacted into a snapshot (temp file,
 * fsync, rename). Every line carries a sequence number and the snapshot the last one it covers, so a
 * crash between the rename and the journal's truncation replays nothing twice. A torn last line
 * (a crash mid-append, never acknowledged) is dropped on open.
 */
export class Journal<S, R> {
  private handle: FileHandle | undefined;
  private seq = 0;
  private sinceCompaction = 0;
  /** Bytes of complete lines in the journal, so a failed append can be cut off again. */
  private size = 0;

  constructor(private readonly dir: string) {}

  /** Records appended since the last compaction. */
  get pending(): number {
    return this.sinceCompaction;
  }

  /**
   * Reads the snapshot and the journal, repairs a torn tail and opens the journal for appends. The
   * directory exists already: the store creates it to lock it first.
   */
  async open(): Promise<Recovered<S, R>> {
    const snapshotFile = await readOptional(join(this.dir, SNAPSHOT));
    const saved =
      snapshotFile === undefined ? undefined : (JSON.parse(snapshotFile) as { seq: number; state: S });
    this.seq = saved?.seq ?? 0;
    const journalPath = join(this.dir, JOURNAL);
    const text = (await readOptional(journalPath)) ?? '';
    const { lines, validBytes } = completeLines(text, journalPath);
    if (validBytes < Buffer.byteLength(text)) await truncate(journalPath, validBytes);
    const records: R[] = [];
    for (const line of lines) {
      if (line.seq <= this.seq) continue;
      records.push(line.record as R);
      this.seq = line.seq;
    }
    this.sinceCompaction = records.length;
    this.size = validBytes;
    this.handle = await open(journalPath, 'a');
    await syncDir(this.dir);
    return { snapshot: saved?.state, records };
  }

  /** Appends one record; resolves once it is on disk. */
  async append(record: R): Promise<void> {
    const handle = this.requireOpen();
    const seq = this.seq + 1;
    const line = `${JSON.stringify({ seq, record })}\n`;
    try {
      await handle.write(line);
      await handle.datasync();
    } catch (error) {
      // A partial line left behind would read as corruption once more lines follow it.
      await handle.truncate(this.size).catch(() => undefined);
      throw error;
    }
    this.seq = seq;
    this.size += Buffer.byteLength(line);
    this.sinceCompaction += 1;
  }

  /** Replaces the snapshot with `state` (covering every appended record) and empties the journal. */
  async compact(state: S): Promise<void> {
    const handle = this.requireOpen();
    const path = join(this.dir, SNAPSHOT);
    const temp = `${path}.tmp`;
    const out = await open(temp, 'w');
    try {
      await out.writeFile(JSON.stringify({ seq: this.seq, state }));
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(temp, path);
    await syncDir(this.dir);
    await handle.truncate(0);
    this.size = 0;
    await handle.sync();
    this.sinceCompaction = 0;
  }

  /** Closes the journal file. */
  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }

  private requireOpen(): FileHandle {
    if (!this.handle) throw new Error('journal is not open');
    return this.handle;
  }
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
      // Only the last line can be torn by a crash; garbage before good lines is corruption.
      if (text.indexOf('\n', end + 1) !== -1)
        throw new Error(`${path}: corrupt journal line at byte ${validBytes}`);
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

/** Makes a rename durable: the directory entry must reach the disk too. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
