import { WEIGHT_TOTAL } from '@vigil/proto';
import { murmur3Continue, type PrefixState, prefixState } from './murmur3.js';

/** Scales an unsigned 32-bit hash to a bucket in [0, 100000): floor(h * 100000 / 2^32), exact in doubles. */
export function bucketOfHash(hash: number): number {
  return Math.floor((hash * WEIGHT_TOTAL) / 4294967296);
}

/**
 * A salt prepared for bucketing: `salt + ":"` is hashed once, each value costs only its own bytes.
 * The prefix state is held in the object's own fields to keep one small object per flag.
 */
export class Bucketer implements PrefixState {
  readonly h1: number;
  readonly tail: number;
  readonly tailLength: number;
  readonly length: number;

  constructor(salt: string) {
    const state = prefixState(`${salt}:`);
    this.h1 = state.h1;
    this.tail = state.tail;
    this.tailLength = state.tailLength;
    this.length = state.length;
  }

  /** MurmurHash3_x86_32(utf8(salt + ":" + value), seed 0), unsigned. */
  hash(value: string): number {
    return murmur3Continue(this, value);
  }

  /** The bucket in [0, 100000) of `value` under this salt. */
  bucket(value: string): number {
    return bucketOfHash(murmur3Continue(this, value));
  }
}

/** `h = murmur3(utf8(salt + ":" + value))` and its bucket: the bucketing contract in one call. */
export function bucketOf(salt: string, value: string): { hash: number; bucket: number } {
  const hash = murmur3Continue(prefixState(`${salt}:`), value);
  return { hash, bucket: bucketOfHash(hash) };
}
