import fc from 'fast-check';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { compareSemver, parseSemver, type SemVer } from '../src/semver.js';

// The `semver` package is the oracle. Its strict mode differs from SemVer 2.0.0 (and from us) in two
// places the generators stay out of: it trims surrounding whitespace, and it refuses a major, minor
// or patch above Number.MAX_SAFE_INTEGER (SemVer sets no limit; we accept them).

const parsed = (text: string): SemVer => {
  const version = parseSemver(text);
  if (!version) throw new Error(`not a version: ${text}`);
  return version;
};

/** A numeric identifier as SemVer writes it: no leading zero. */
const numeric = (max: number) => fc.oneof(fc.nat({ max: 3 }), fc.nat({ max })).map(String);
const alphanumeric = fc.oneof(
  fc.constantFrom('alpha', 'beta', 'rc', 'a1', '1a', '0a', '-', 'x-y', 'Z', 'A', 'a'),
  fc.stringMatching(/^[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*$/),
);
const prereleaseId = fc.oneof(numeric(2 ** 40), alphanumeric);
const buildId = fc.stringMatching(/^[0-9A-Za-z-]+$/);

/** Valid versions, with small parts often so that pairs tie or nearly tie. */
const version = fc
  .record({
    v: fc.boolean(),
    // 13 digits at most, so that inserting two more characters stays within MAX_SAFE_INTEGER
    major: numeric(2 ** 40),
    minor: numeric(1000),
    patch: numeric(2 ** 31),
    prerelease: fc.array(prereleaseId, { maxLength: 4 }),
    build: fc.array(buildId, { maxLength: 3 }),
  })
  .map(
    ({ v, major, minor, patch, prerelease, build }) =>
      `${v ? 'v' : ''}${major}.${minor}.${patch}` +
      (prerelease.length > 0 ? `-${prerelease.join('.')}` : '') +
      (build.length > 0 ? `+${build.join('.')}` : ''),
  );

/** Almost-versions: the characters versions are made of, in any order (leading zeros, empty ids, ...). */
const versionish = fc.oneof(
  version,
  fc.string({
    unit: fc.constantFrom('0', '1', '2', '9', '.', '-', '+', 'a', 'Z', 'v', 'x', '=', '~', '_'),
    maxLength: 16,
  }),
  fc
    .tuple(version, fc.nat({ max: 40 }), fc.constantFrom('', '0', '.', '-', '+', '..', '01', 'é', '.0'))
    .map(([text, at, insert]) => text.slice(0, at) + insert + text.slice(at)),
);

describe('parseSemver', () => {
  it('accepts exactly the versions semver.valid accepts in strict mode', () => {
    fc.assert(
      fc.property(versionish, (text) => {
        expect(parseSemver(text) !== undefined, text).toBe(semver.valid(text, { loose: false }) !== null);
      }),
      { numRuns: 5000 },
    );
  });

  it('reads the same parts as the semver package, dropping build metadata', () => {
    fc.assert(
      fc.property(version, (text) => {
        const ours = parsed(text);
        const theirs = new semver.SemVer(text);
        expect([ours.major, ours.minor, ours.patch]).toEqual([theirs.major, theirs.minor, theirs.patch]);
        expect(ours.prerelease.map(String)).toEqual(theirs.prerelease.map(String));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses the classic near misses', () => {
    for (const text of [
      '1.2',
      '1',
      '01.2.3',
      '1.02.3',
      '1.2.3-01',
      '1.2.3-',
      '1.2.3+',
      '1.2.3-a..b',
      '1.2.3+a..b',
      'V1.2.3',
      '=1.2.3',
      ' 1.2.3',
      '1.2.3 ',
      '',
    ]) {
      expect(parseSemver(text), text).toBeUndefined();
    }
    expect(parseSemver(`1.2.3-${'a'.repeat(251)}`)).toBeUndefined();
    expect(parseSemver(`1.2.3-${'a'.repeat(250)}`)).toBeDefined();
  });

  it('is case-sensitive and keeps numeric prerelease identifiers as numbers', () => {
    expect(parsed('v1.2.3-RC.10+build.01')).toEqual({ major: 1, minor: 2, patch: 3, prerelease: ['RC', 10] });
  });
});

describe('compareSemver', () => {
  it('orders any two versions as semver.compare does', () => {
    fc.assert(
      fc.property(version, version, (a, b) => {
        expect(compareSemver(parsed(a), parsed(b)), `${a} vs ${b}`).toBe(semver.compare(a, b));
      }),
      { numRuns: 5000 },
    );
  });

  it('orders versions that share a prefix as semver.compare does', () => {
    // pairs built from one version so that most differ in one late part, or only in build metadata
    const pair = fc.tuple(
      version,
      fc.array(prereleaseId, { maxLength: 2 }),
      fc.array(buildId, { maxLength: 1 }),
    );
    fc.assert(
      fc.property(pair, ([base, extra, build]) => {
        const core = base.split('+')[0]!;
        const other =
          core +
          (extra.length > 0 ? `${core.includes('-') ? '.' : '-'}${extra.join('.')}` : '') +
          (build.length > 0 ? `+${build.join('.')}` : '');
        expect(compareSemver(parsed(base), parsed(other)), `${base} vs ${other}`).toBe(
          semver.compare(base, other),
        );
        expect(compareSemver(parsed(other), parsed(base))).toBe(semver.compare(other, base));
      }),
      { numRuns: 3000 },
    );
  });

  it('follows the precedence example of semver.org', () => {
    const ordered = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.0.1',
      '1.1.0',
      '2.0.0',
    ];
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        expect(
          compareSemver(parsed(ordered[i]!), parsed(ordered[j]!)),
          `${ordered[i]} vs ${ordered[j]}`,
        ).toBe(Math.sign(i - j));
      }
    }
  });

  it('ignores build metadata and a leading v', () => {
    expect(compareSemver(parsed('1.0.0+build.1'), parsed('v1.0.0+build.2'))).toBe(0);
  });
});

describe('parseSemver limits', () => {
  it('refuses numbers past 2^53, which the semver package refuses too', () => {
    expect(parseSemver('9007199254740993.0.0')).toBeUndefined();
    expect(parseSemver('1.0.0-9007199254740993')).toBeUndefined();
    expect(parseSemver('9007199254740991.0.0')).toBeDefined();
  });
});
