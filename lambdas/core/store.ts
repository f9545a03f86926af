import { type AttributeValue, BatchGetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AppError } from './errors.ts';

export type Item = Record<string, AttributeValue>;

export const S = (value: string): AttributeValue => ({ S: value });
export const N = (value: number): AttributeValue => ({ N: String(value) });
export const SS = (values: readonly string[]): AttributeValue => ({ SS: [...values] });

export function str(item: Item | undefined, name: string): string | undefined {
  const v = item?.[name];
  return v && 'S' in v ? v.S : undefined;
}

export function num(item: Item | undefined, name: string): number | undefined {
  const v = item?.[name];
  return v && 'N' in v && v.N !== undefined ? Number(v.N) : undefined;
}

export function strs(item: Item | undefined, name: string): string[] {
  const v = item?.[name];
  if (v && 'SS' in v && v.SS) return v.SS;
  if (v && 'L' in v && v.L) return v.L.flatMap((x) => (x.S === undefined ? [] : [x.S]));
  return [];
}

/**
 * Whether a TTL item is still in force. DynamoDB deletes expired items late (often days
 * later) and dynalite never does, so every read compares `expiresAt` with now.
 */
export function isLive(item: Item | undefined, nowSeconds: number): item is Item {
  if (!item) return false;
  const expiresAt = num(item, 'expiresAt');
  return expiresAt === undefined || expiresAt > nowSeconds;
}

export function isConditionFailure(err: unknown): boolean {
  return (err as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException';
}

/**
 * Runs a store call and turns any failure into `unavailable`, so that callers fail
 * closed with a clear error instead of leaking driver errors.
 */
export async function storeCall<T>(
  what: string,
  call: (db: DynamoDBClient) => Promise<T>,
  db: DynamoDBClient,
): Promise<T> {
  try {
    return await call(db);
  } catch (err) {
    if (err instanceof AppError || isConditionFailure(err)) throw err;
    throw new AppError('unavailable', `the store is unavailable (${what})`, { cause: err });
  }
}

/** One page of a Query or Scan. */
export interface Page {
  readonly Items?: Item[];
  readonly LastEvaluatedKey?: Item;
}

/**
 * Every item of a paginated Query or Scan, in order: `page` is called with each
 * `ExclusiveStartKey` (undefined first) until DynamoDB returns no `LastEvaluatedKey`.
 * With `keep`, only the items it accepts are collected; with `enough`, reading stops
 * once it is true of the count collected (`page` is told that count, to set a `Limit`).
 */
export async function allPages(
  page: (start: Item | undefined, collected: number) => Promise<Page>,
  options: { keep?: (item: Item) => boolean; enough?: (collected: number) => boolean } = {},
): Promise<Item[]> {
  const { keep, enough } = options;
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const out = await page(start, items.length);
    for (const item of out.Items ?? []) if (!keep || keep(item)) items.push(item);
    start = out.LastEvaluatedKey;
  } while (start && !enough?.(items.length));
  return items;
}

/**
 * Runs a conditional write and resolves `undefined` when its condition failed (the
 * write that must happen once lost, or its item is gone); other failures pass on.
 */
export async function unlessConditionFails<T>(write: Promise<T>): Promise<T | undefined> {
  try {
    return await write;
  } catch (err) {
    if (isConditionFailure(err)) return undefined;
    throw err;
  }
}

export interface KeyRef {
  readonly table: string;
  readonly key: Item;
}

/**
 * One BatchGetItem across tables (one round trip), returning items in request order
 * (undefined where absent). Unprocessed keys, which DynamoDB returns under load, are
 * retried a few times before failing closed.
 */
export async function batchGet(
  db: DynamoDBClient,
  refs: readonly KeyRef[],
  options: { consistent?: boolean } = {},
): Promise<(Item | undefined)[]> {
  const results = new Map<string, Item>();
  const keyId = (table: string, key: Item) => `${table}\u0000${JSON.stringify(Object.entries(key).sort())}`;
  const keyNames = new Map<string, string[]>();
  let pending: Record<string, { Keys: Item[]; ConsistentRead?: boolean }> = {};
  for (const ref of refs) {
    keyNames.set(ref.table, Object.keys(ref.key));
    pending[ref.table] ??= { Keys: [], ConsistentRead: options.consistent ?? false };
    const entry = pending[ref.table] as { Keys: Item[] };
    if (!entry.Keys.some((k) => keyId(ref.table, k) === keyId(ref.table, ref.key))) entry.Keys.push(ref.key);
  }
  for (let attempt = 0; Object.keys(pending).length > 0; attempt++) {
    if (attempt === 4) throw new AppError('unavailable', 'the store is unavailable (batch get)');
    const out = await storeCall(
      'batch get',
      (c) => c.send(new BatchGetItemCommand({ RequestItems: pending })),
      db,
    );
    for (const [table, items] of Object.entries(out.Responses ?? {})) {
      const names = keyNames.get(table) ?? [];
      for (const item of items) {
        const key: Item = {};
        for (const n of names) if (item[n]) key[n] = item[n];
        results.set(keyId(table, key), item);
      }
    }
    pending = (out.UnprocessedKeys ?? {}) as typeof pending;
    if (Object.keys(pending).length > 0) await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
  }
  return refs.map((ref) => results.get(keyId(ref.table, ref.key)));
}

/** BatchGetItem's limit of keys per call. */
const BATCH_GET_MAX = 100;

/**
 * `batchGet` over any number of keys of one table, `BATCH_GET_MAX` a call, one call after
 * another; items in key order (undefined where absent).
 */
export async function batchGetMany(
  db: DynamoDBClient,
  table: string,
  keys: readonly Item[],
  options: { consistent?: boolean } = {},
): Promise<(Item | undefined)[]> {
  const items: (Item | undefined)[] = [];
  for (let i = 0; i < keys.length; i += BATCH_GET_MAX) {
    const chunk = keys.slice(i, i + BATCH_GET_MAX).map((key) => ({ table, key }));
    items.push(...(await batchGet(db, chunk, options)));
  }
  return items;
}
