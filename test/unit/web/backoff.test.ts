import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../../web/backoff.ts';

describe('backoffDelay', () => {
  it('doubles per attempt up to the maximum', () => {
    const top = () => 1 - Number.EPSILON;
    expect([1, 2, 3, 4, 5, 6, 20].map((n) => backoffDelay(n, 500, 8000, top))).toEqual([
      500, 1000, 2000, 4000, 8000, 8000, 8000,
    ]);
  });

  it('jitters into the upper half of each step', () => {
    expect(backoffDelay(3, 500, 30_000, () => 0)).toBe(1000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(4, 500, 30_000, Math.random);
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(4000);
    }
  });

  it('never overflows for large attempt counts', () => {
    expect(backoffDelay(5000, 500, 30_000, () => 0.5)).toBe(22_500);
  });
});
