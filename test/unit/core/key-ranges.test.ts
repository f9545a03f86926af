import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  boundaryAt,
  inRange,
  type KeyRange,
  keyPosition,
  splitRange,
} from '../../../lambdas/core/key-ranges.ts';

/** Connection ids as API Gateway (base64) and the local gateway (base64url) make them. */
const awsId = () => `${randomBytes(11).toString('base64')}=`.slice(0, 16);
const localId = () => `${randomBytes(11).toString('base64url')}=`;

function owners(key: string, ranges: readonly KeyRange[]): number {
  return ranges.filter((r) => inRange(key, r)).length;
}

describe('key ranges of a room partition', () => {
  it('puts every id of either alphabet in exactly one range of a split, at every depth', () => {
    const ids = [...Array.from({ length: 3000 }, awsId), ...Array.from({ length: 3000 }, localId)];
    const top = splitRange({}, 7);
    expect(top).toHaveLength(7);
    const nested = top.flatMap((r, i) => (i % 2 === 0 ? splitRange(r, 5) : [r]));
    for (const ranges of [top, nested]) {
      for (const id of ids) expect(owners(id, ranges)).toBe(1);
    }
  });

  it('cuts the key space so that random ids of either alphabet spread within 30% of an equal share', () => {
    const ranges = splitRange({}, 20);
    for (const make of [awsId, localId]) {
      const ids = Array.from({ length: 20_000 }, make);
      for (const r of ranges) {
        const n = ids.filter((id) => inRange(id, r)).length;
        expect(n).toBeGreaterThan(1000 * 0.7);
        expect(n).toBeLessThan(1000 * 1.3);
      }
    }
  });

  it('keeps boundaries strictly increasing and strictly inside the range it splits', () => {
    const range = { from: 'AAAA', to: 'AAAB' };
    const parts = splitRange(range, 16);
    expect(parts[0]?.from).toBe('AAAA');
    expect(parts[parts.length - 1]?.to).toBe('AAAB');
    for (let i = 1; i < parts.length; i++) {
      const cut = parts[i]?.from as string;
      expect(cut > (parts[i - 1]?.from as string)).toBe(true);
      expect(cut < 'AAAB').toBe(true);
      expect(parts[i - 1]?.to).toBe(cut);
    }
  });

  it('gives back the range whole when its key space is too narrow to cut', () => {
    const narrow = { from: boundaryAt(0.5), to: `${boundaryAt(0.5)}+` };
    expect(splitRange(narrow, 8)).toEqual([narrow]);
  });

  it('orders positions as the store orders keys', () => {
    const ids = Array.from({ length: 500 }, awsId).sort();
    for (let i = 1; i < ids.length; i++) {
      expect(keyPosition(ids[i] as string)).toBeGreaterThanOrEqual(keyPosition(ids[i - 1] as string));
    }
    expect(keyPosition(boundaryAt(0.25))).toBeCloseTo(0.25, 6);
  });
});
