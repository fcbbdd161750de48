import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { VigilError } from '../errors.js';

/** The lock's name inside the data directory. */
export const LOCK_NAME = 'LOCK';
/** A lock not refreshed for this long belongs to a process that died; it is refreshed at half of it. */
export const DEFAULT_LOCK_STALE_MS = 10_000;
const RETRY_MS = 1_000;

/**
 * Takes the embedded store's data directory for this process: two processes appending to one journal
 * (`pnpm start` run twice) would lose acknowledged writes. A lock left behind by a process that died
 * goes stale within `staleMs`, so start-up waits that long, calling `onWait` once, before giving up
 * with `VIGIL_DATA_DIR_LOCKED`. `onLost` hears of the lock being lost later (its refresh failed or
 * another process took it over); resolves with the function that releases it.
 */
export async function lockDataDir(
  dir: string,
  onLost: (error: Error) => void,
  onWait: () => void,
  staleMs = DEFAULT_LOCK_STALE_MS,
): Promise<() => Promise<void>> {
  const options = {
    lockfilePath: join(dir, LOCK_NAME),
    realpath: false,
    stale: staleMs,
    update: staleMs / 2,
    onCompromised: onLost,
  };
  try {
    return await lockfile.lock(dir, options);
  } catch (error) {
    if (!isLocked(error)) throw error;
  }
  onWait();
  const retries = { retries: Math.ceil((1.5 * staleMs) / RETRY_MS), factor: 1, minTimeout: RETRY_MS };
  try {
    return await lockfile.lock(dir, { ...options, retries });
  } catch (error) {
    if (!isLocked(error)) throw error;
    throw new VigilError(
      'VIGIL_DATA_DIR_LOCKED',
      `data directory ${dir} is in use by another running Vigil (it holds ${join(dir, LOCK_NAME)}); ` +
        'stop that process, or set VIGIL_DATA_DIR to another directory',
    );
  }
}

function isLocked(error: unknown): boolean {
  return (error as { code?: string }).code === 'ELOCKED';
}
