import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { revokedBefore } from '../../../lambdas/core/access.ts';
import {
  allPages,
  batchGetMany,
  type Item,
  N,
  S,
  unlessConditionFails,
} from '../../../lambdas/core/store.ts';

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

describe('batchGetMany', () => {
  /** A client holding items `k0`, `k2`, `k4`...: answers each BatchGetItem with those it asks for. */
  function evenItems() {
    const calls: number[] = [];
    const db = {
      send: async (command: { input: { RequestItems: Record<string, { Keys: Item[] }> } }) => {
        const keys = command.input.RequestItems.t?.Keys ?? [];
        calls.push(keys.length);
        const found = keys.filter((k) => Number(k.id?.S?.slice(1)) % 2 === 0);
        return { Responses: { t: found.map((k) => ({ ...k, v: S('x') })) } };
      },
    } as unknown as DynamoDBClient;
    return { db, calls };
  }

  it('asks 100 keys a call, one call after another, and answers in key order', async () => {
    const { db, calls } = evenItems();
    const keys = Array.from({ length: 250 }, (_, i) => ({ id: S(`k${i}`) }));
    const items = await batchGetMany(db, 't', keys);
    expect(calls).toEqual([100, 100, 50]);
    expect(items).toHaveLength(250);
    expect(items[0]?.id?.S).toBe('k0');
    expect(items[1]).toBeUndefined();
    expect(items[248]?.id?.S).toBe('k248');
  });

  it('makes no call for no keys', async () => {
    const { db, calls } = evenItems();
    expect(await batchGetMany(db, 't', [])).toEqual([]);
    expect(calls).toEqual([]);
  });
});
