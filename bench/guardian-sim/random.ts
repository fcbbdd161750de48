/** A stream of uniform 32-bit unsigned integers. */
export type Rng = () => number;

/** splitmix32: spreads a seed into well-mixed state words. */
function splitmix32(seed: number): () => number {
  let z = seed >>> 0;
  return () => {
    z = (z + 0x9e3779b9) | 0;
    let t = z ^ (z >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
}

/**
 * sfc32 (Chris Doty-Humphrey's small fast chaotic generator, which passes PractRand), seeded through
 * splitmix32: the same seed gives the same stream.
 */
export function sfc32(seed: number): Rng {
  const mix = splitmix32(seed);
  let a = mix();
  let b = mix();
  let c = mix();
  let d = 1;
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/** A uniform draw in [0, 1). */
export function uniform(rng: Rng): number {
  return rng() / 4294967296;
}

/** A seed for run `run` of a scenario, spread so that neighbouring runs' streams are unrelated. */
export function seedOf(scenario: number, run: number): number {
  let h = Math.imul(scenario ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(run + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/** A Binomial(n, p) draw by inversion: O(n·p) steps, exact; for the small means the simulation needs. */
export function binomial(n: number, p: number, rng: Rng): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(n, 1 - p, rng);
  const q = 1 - p;
  let pmf = q ** n;
  if (pmf < 1e-280) {
    // (1−p)^n underflows only for means in the hundreds: count trials one by one instead.
    let k = 0;
    for (let i = 0; i < n; i++) if (uniform(rng) < p) k++;
    return k;
  }
  const ratio = p / q;
  let u = uniform(rng);
  let k = 0;
  while (u > pmf && k < n) {
    u -= pmf;
    pmf *= (ratio * (n - k)) / (k + 1);
    k++;
  }
  return k;
}

/** The standard normal CDF Φ(x), from erfc (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}
