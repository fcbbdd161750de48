import { describe, expect, it } from 'vitest';
import { formatCount, formatLatency, formatRate } from '../src/index.js';

describe('incident figures', () => {
  it('write rates with two decimals, three below 0.1%, and a bare 0%', () => {
    expect(formatRate(0.5)).toBe('50.00%');
    expect(formatRate(0.0543)).toBe('5.43%');
    expect(formatRate(0.00074)).toBe('0.074%');
    expect(formatRate(0)).toBe('0%');
  });

  it('write counts with thousands separators and latencies in ms, or s from a second up', () => {
    expect(formatCount(1356)).toBe('1,356');
    expect(formatLatency(19.4)).toBe('19 ms');
    expect(formatLatency(2400)).toBe('2.40 s');
    expect(formatLatency(null)).toBe('n/a');
  });
});
