// MurmurHash3_x86_32 (aappleby/smhasher, public domain) over UTF-8 bytes.
//
// Bucketing hashes `salt + ":" + value` for every evaluation. The salt part is the same for every
// context, so its whole 4-byte blocks are mixed once per flag (`prefixState`) and each evaluation
// only feeds the value's bytes.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** The hash state after a prefix: mixed blocks in `h1`, 0–3 pending bytes in `tail`. */
export interface PrefixState {
  readonly h1: number;
  readonly tail: number;
  readonly tailLength: number;
  readonly length: number;
}

function mixBlock(h1: number, k1: number): number {
  k1 = Math.imul(k1, C1);
  k1 = (k1 << 15) | (k1 >>> 17);
  k1 = Math.imul(k1, C2);
  h1 ^= k1;
  h1 = (h1 << 13) | (h1 >>> 19);
  return (Math.imul(h1, 5) + 0xe6546b64) | 0;
}

function finish(h1: number, tail: number, tailLength: number, length: number): number {
  if (tailLength > 0) {
    let k1 = Math.imul(tail, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    h1 ^= Math.imul(k1, C2);
  }
  h1 ^= length;
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  h1 = Math.imul(h1, 0xc2b2ae35);
  h1 ^= h1 >>> 16;
  return h1 >>> 0;
}

const START: PrefixState = { h1: 0, tail: 0, tailLength: 0, length: 0 };

/** MurmurHash3_x86_32 of raw bytes, as an unsigned 32-bit integer. */
export function murmur3Bytes(bytes: Uint8Array, seed = 0): number {
  return finishState(absorb(seed === 0 ? START : { ...START, h1: seed | 0 }, bytes, bytes.length));
}

// Scratch space for the UTF-8 bytes of non-ASCII text; grown on demand, never shrunk.
let scratch = new Uint8Array(256);
const encoder = new TextEncoder();

/** The state after feeding `bytes[0..count)` to `state`. */
function absorb(state: PrefixState, bytes: Uint8Array, count: number): PrefixState {
  let h1 = state.h1;
  let tail = state.tail;
  let tailLength = state.tailLength;
  for (let i = 0; i < count; i++) {
    tail |= bytes[i]! << (tailLength << 3);
    if (++tailLength === 4) {
      h1 = mixBlock(h1, tail);
      tail = 0;
      tailLength = 0;
    }
  }
  return { h1, tail, tailLength, length: state.length + count };
}

function finishState(state: PrefixState): number {
  return finish(state.h1, state.tail, state.tailLength, state.length);
}

/**
 * MurmurHash3_x86_32 of UTF-8(prefix + text), where `state` is `prefixState(prefix)`. ASCII text is
 * hashed straight from its char codes with no allocation; other text is UTF-8 encoded into a reused
 * buffer (lone surrogates become U+FFFD, as TextEncoder does).
 */
export function murmur3Continue(state: PrefixState, text: string): number {
  let h1 = state.h1;
  let tail = state.tail;
  let tailLength = state.tailLength;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return continueNonAscii(state, text);
    tail |= c << (tailLength << 3);
    if (++tailLength === 4) {
      h1 = mixBlock(h1, tail);
      tail = 0;
      tailLength = 0;
    }
  }
  return finish(h1, tail, tailLength, state.length + n);
}

function continueNonAscii(state: PrefixState, text: string): number {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit
  if (scratch.length < text.length * 3) scratch = new Uint8Array(text.length * 3);
  const { written } = encoder.encodeInto(text, scratch);
  return finishState(absorb(state, scratch, written));
}

/** The state after hashing the UTF-8 bytes of `prefix`, to be continued by `murmur3Continue`. */
export function prefixState(prefix: string, seed = 0): PrefixState {
  const bytes = encoder.encode(prefix);
  return absorb(seed === 0 ? START : { ...START, h1: seed | 0 }, bytes, bytes.length);
}

/** MurmurHash3_x86_32 of the UTF-8 bytes of `text`, as an unsigned 32-bit integer. */
export function murmur3(text: string, seed = 0): number {
  return murmur3Continue(seed === 0 ? START : { ...START, h1: seed | 0 }, text);
}
