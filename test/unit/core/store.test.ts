import { describe, expect, it } from 'vitest';
import { revokedBefore } from '../../../lambdas/core/access.ts';
import { allPages, type Item, N, S } from '../../../lambdas/core/store.ts';

describe('allPages', () => {
  it('follows LastEvaluatedKey until there is none, passing each key on, and keeps the order', async () => {
    const pages: { Items: Item[]; LastEvaluatedKey?: Item }[] = [
      { Items: [{ id: S('a') }, { id: S('b') }], LastEvaluatedKey: { id: S('b') } },
      { Items: [], LastEvaluatedKey: { id: S('b') } },
      { Items: [{ id: S('c') }] },
    ];
    const starts: (Item | undefined)[] = [];
    const items = await allPages(async (start) => {
      starts.push(start);
      return pages[starts.length - 1] ?? { Items: [] };
    });
    expect(items.map((i) => i.id?.S)).toEqual(['a', 'b', 'c']);
    expect(starts).toEqual([undefined, { id: S('b') }, { id: S('b') }]);
  });

  it('passes a failing page on', async () => {
    await expect(allPages(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
  });
});

describe('revokedBefore', () => {
  it('covers what was issued up to and including the second of the revocation', () => {
    const mark = { id: S('user#u'), before: N(100) };
    expect(revokedBefore(mark, 99)).toBe(true);
    expect(revokedBefore(mark, 100)).toBe(true);
    expect(revokedBefore(mark, 101)).toBe(false);
    expect(revokedBefore(undefined, 1)).toBe(false);
  });
});
