import { describe, expect, it } from 'vitest';
import { revokedBefore } from '../../../lambdas/core/access.ts';
import { allPages, type Item, N, S, unlessConditionFails } from '../../../lambdas/core/store.ts';

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

  it('keeps only the items `keep` accepts, and tells each page how many it has kept', async () => {
    const pages: { Items: Item[]; LastEvaluatedKey?: Item }[] = [
      { Items: [{ id: S('a') }, { id: S('skip') }], LastEvaluatedKey: { id: S('skip') } },
      { Items: [{ id: S('b') }] },
    ];
    const told: number[] = [];
    const items = await allPages(
      async (_start, collected) => {
        told.push(collected);
        return pages[told.length - 1] ?? { Items: [] };
      },
      { keep: (i) => i.id?.S !== 'skip' },
    );
    expect(items.map((i) => i.id?.S)).toEqual(['a', 'b']);
    expect(told).toEqual([0, 1]);
  });

  it('stops reading once `enough` holds, though more pages remain', async () => {
    let calls = 0;
    const items = await allPages(
      async (start) => {
        calls++;
        const n = Number(start?.id?.N ?? 0);
        return { Items: [{ id: N(n + 1) }, { id: N(n + 2) }], LastEvaluatedKey: { id: N(n + 2) } };
      },
      { enough: (collected) => collected > 4 },
    );
    expect(calls).toBe(3);
    expect(items).toHaveLength(6);
  });
});

describe('unlessConditionFails', () => {
  const conditionFailure = Object.assign(new Error('failed'), { name: 'ConditionalCheckFailedException' });

  it('resolves what the write resolves', async () => {
    expect(await unlessConditionFails(Promise.resolve({ ok: 1 }))).toEqual({ ok: 1 });
  });

  it('resolves undefined when the condition failed', async () => {
    expect(await unlessConditionFails(Promise.reject(conditionFailure))).toBeUndefined();
  });

  it('passes any other failure on', async () => {
    await expect(unlessConditionFails(Promise.reject(new Error('down')))).rejects.toThrow('down');
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
