import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import murmurhash3js from 'murmurhash3js';
import { describe, expect, it } from 'vitest';
import { murmur3, murmur3Bytes, murmur3Continue, prefixState } from '../src/murmur3.js';

interface Vector {
  input_hex?: string;
  input_utf8?: string;
  seed: number;
  expected: number;
  non_ascii?: boolean;
}
const published = JSON.parse(
  readFileSync(
    new URL('../../../proto/vectors/murmur3/murmurhash3_x86_32_vectors.json', import.meta.url),
    'utf8',
  ),
) as { vectors: Vector[]; smhasher_verification: { expected: number } };

const hex = (text: string) => Uint8Array.from(text.match(/../g) ?? [], (b) => Number.parseInt(b, 16));

describe('MurmurHash3_x86_32 against the published vectors', () => {
  for (const v of published.vectors) {
    const label = v.input_utf8 !== undefined ? JSON.stringify(v.input_utf8) : `0x${v.input_hex}`;
    it(`hashes ${label} with seed ${v.seed} to ${v.expected}`, () => {
      if (v.input_utf8 !== undefined) {
        expect(murmur3(v.input_utf8, v.seed)).toBe(v.expected);
        expect(murmur3Bytes(new TextEncoder().encode(v.input_utf8), v.seed)).toBe(v.expected);
      } else {
        expect(murmur3Bytes(hex(v.input_hex ?? ''), v.seed)).toBe(v.expected);
      }
    });
  }

  it('passes SMHasher verification (0xB0F57EE3)', () => {
    const all = new Uint8Array(1024);
    const view = new DataView(all.buffer);
    for (let i = 0; i < 256; i++) {
      const key = Uint8Array.from({ length: i }, (_, j) => j);
      view.setUint32(i * 4, murmur3Bytes(key, 256 - i), true);
    }
    expect(murmur3Bytes(all, 0)).toBe(published.smhasher_verification.expected);
  });

  it('includes non-ASCII vectors that murmurhash3js, fed a JS string, gets wrong', () => {
    const nonAscii = published.vectors.filter((v) => v.non_ascii);
    expect(nonAscii.length).toBeGreaterThanOrEqual(2);
    for (const v of nonAscii)
      expect(murmurhash3js.x86.hash32(v.input_utf8 ?? '', v.seed)).not.toBe(v.expected);
  });
});

/** murmurhash3js hashes the low byte of each char, so a string of UTF-8 bytes makes it a UTF-8 oracle. */
function oracle(text: string, seed = 0): number {
  return murmurhash3js.x86.hash32(String.fromCharCode(...new TextEncoder().encode(text)), seed);
}

describe('string hashing equals hashing the UTF-8 bytes', () => {
  it('agrees with murmurhash3js over UTF-8 bytes for any string, including lone surrogates', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }),
        fc.string({ unit: 'binary' }),
        fc.nat(),
        (prefix, text, seed) => {
          const expected = oracle(prefix + text, seed);
          expect(murmur3Bytes(new TextEncoder().encode(prefix + text), seed)).toBe(expected);
          expect(murmur3(prefix + text, seed)).toBe(expected);
          expect(murmur3Continue(prefixState(prefix, seed), text)).toBe(expected);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
