import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { N, num, S, storeCall } from './store.ts';

/** A fixed window: `[start, start + lengthS)`, aligned to multiples of its length. */
export interface Window {
  readonly start: number;
  readonly lengthS: number;
}

export function windowAt(nowSeconds: number, lengthS: number): Window {
  return { start: Math.floor(nowSeconds / lengthS) * lengthS, lengthS };
}

/** Seconds until the window ends (at least 1), for `Retry-After`. */
export function secondsLeft(window: Window, nowSeconds: number): number {
  return Math.max(1, window.start + window.lengthS - nowSeconds);
}

/** The counter item id of a scope (e.g. `login#user#alice`) in a window. */
export function counterId(scope: string, window: Window): string {
  return `${scope}#${window.start}`;
}

/**
 * Adds one to a counter atomically (a single UpdateItem ADD, safe under concurrency
 * across sockets and containers) and returns the new count. The item expires with its window.
 */
export async function incrementCounter(
  deps: Pick<Deps, 'db' | 'tables'>,
  scope: string,
  window: Window,
  by = 1,
): Promise<number> {
  const out = await storeCall(
    'counter',
    (db) =>
      db.send(
        new UpdateItemCommand({
          TableName: deps.tables.counters,
          Key: { id: S(counterId(scope, window)) },
          UpdateExpression: 'ADD #c :one SET expiresAt = if_not_exists(expiresAt, :exp)',
          ExpressionAttributeNames: { '#c': 'count' },
          ExpressionAttributeValues: { ':one': N(by), ':exp': N(window.start + window.lengthS) },
          ReturnValues: 'UPDATED_NEW',
        }),
      ),
    deps.db,
  );
  return num(out.Attributes, 'count') ?? by;
}
