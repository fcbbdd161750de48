import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { principalOf } from './auth.js';
import { VigilError } from './errors.js';
import {
  type IdempotencyClaim,
  type IdempotencyRecord,
  IdempotentReplay,
  type Store,
} from './store/store.js';

/*
 * `Idempotency-Key` on write routes: the one place that turns the header into a claim the store
 * records in the same atomic step as the write, and answers a repeat from that record.
 *
 * - The claim id is a hash of the caller's token id and the key: two tokens never share a key, and
 *   the key itself is never stored.
 * - The fingerprint is a hash of what the request asks: method, route, path parameters, the
 *   headers that change the outcome (`If-Match`, `X-Vigil-Reason`) and the body (keys sorted). A
 *   repeat with another fingerprint is refused with 422 `VIGIL_IDEMPOTENCY_KEY_REUSED`.
 * - A request racing one with the same key is not refused: the store checks the key atomically
 *   with the write, so whichever commits second writes nothing and answers the first's response.
 * - Only successful writes are recorded; a request refused with a 4xx (or not applied, 503
 *   `VIGIL_STORE_UNAVAILABLE`) runs again when repeated.
 */

/** The header's value: 1 to 255 visible ASCII characters (a UUID, say). */
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** Headers whose value changes what a write does, so they are part of the fingerprint. */
const FINGERPRINT_HEADERS = ['if-match', 'x-vigil-reason'] as const;

/** The store's id for a token's Idempotency-Key: keys are per token, and the key itself is never stored. */
export function idempotencyRecordId(principalId: string, key: string): string {
  return sha256(`vigil-idempotency\n${principalId}\n${key}`);
}

/** A write request's `Idempotency-Key`, ready to become the store's claim. */
export class Idempotency {
  private constructor(
    readonly id: string,
    readonly fingerprint: string,
    private readonly sealKey: Buffer,
  ) {}

  /** The request's key, or undefined when it sends none; a malformed one is a 400. */
  static of(request: FastifyRequest): Idempotency | undefined {
    const raw = request.headers['idempotency-key'];
    if (raw === undefined) return undefined;
    if (typeof raw !== 'string' || !KEY_PATTERN.test(raw)) {
      throw new VigilError(
        'VIGIL_BAD_REQUEST',
        'invalid Idempotency-Key header: 1 to 255 visible ASCII characters',
        [{ field: 'header.idempotency-key', message: 'must be 1 to 255 visible ASCII characters' }],
      );
    }
    const principal = principalOf(request).id;
    const id = idempotencyRecordId(principal, raw);
    const headers = FINGERPRINT_HEADERS.map((name) => request.headers[name] ?? null);
    const fingerprint = sha256(
      canonical([
        request.method,
        request.routeOptions.url ?? request.url,
        request.params ?? {},
        headers,
        request.body ?? null,
      ]),
    );
    const sealKey = createHash('sha256').update(`vigil-idempotency-seal\n${principal}\n${raw}`).digest();
    return new Idempotency(id, fingerprint, sealKey);
  }

  /** The claim for a write that answers `status` when it succeeds. */
  claim(status: number, attachment?: string): IdempotencyClaim {
    const claim: IdempotencyClaim = { id: this.id, fingerprint: this.fingerprint, status };
    if (attachment !== undefined) claim.attachment = attachment;
    return claim;
  }

  /**
   * Encrypts a secret for the record (AES-256-GCM under a key derived from the Idempotency-Key, which
   * the store never sees), so a replayed token creation can answer its secret while the store holds
   * only ciphertext.
   */
  seal(secret: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.sealKey, iv);
    const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url');
  }

  /** The secret `seal` encrypted. */
  open(sealed: string): string {
    const bytes = Buffer.from(sealed, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.sealKey, bytes.subarray(0, 12));
    decipher.setAuthTag(bytes.subarray(12, 28));
    return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
  }
}

/**
 * Runs a write route under its `Idempotency-Key`: a key already recorded answers its record through
 * `answer` (or 422 for another request); otherwise `write` runs, passing the claim to the store, and
 * a store that finds the claim recorded meanwhile (a racing retry) is answered the same way.
 */
export async function idempotent<T>(
  store: Pick<Store, 'getIdempotency'>,
  idempotency: Idempotency | undefined,
  answer: (record: IdempotencyRecord) => T,
  write: () => Promise<T>,
): Promise<T> {
  if (idempotency) {
    const record = await store.getIdempotency(idempotency.id);
    if (record) return answer(checked(record, idempotency));
  }
  try {
    return await write();
  } catch (error) {
    if (error instanceof IdempotentReplay) return answer(error.record);
    throw error;
  }
}

/** Adds a claim to write metadata when the request has a key. */
export function claimed<M extends object>(
  meta: M,
  idempotency: Idempotency | undefined,
  status: number,
): M & { idempotency?: IdempotencyClaim } {
  return idempotency ? { ...meta, idempotency: idempotency.claim(status) } : meta;
}

function checked(record: IdempotencyRecord, idempotency: Idempotency): IdempotencyRecord {
  if (record.fingerprint !== idempotency.fingerprint) {
    throw new VigilError(
      'VIGIL_IDEMPOTENCY_KEY_REUSED',
      'this Idempotency-Key was used for another request (route, target, body or If-Match); use a new key',
    );
  }
  return record;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/** JSON with object keys sorted, so the same body always hashes the same. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}
