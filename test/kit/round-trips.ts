import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ConnectionsApi } from '../../lambdas/core/deps.ts';

/**
 * One DynamoDB call or PostToConnection seen by the probe. `depth` is 1 + the deepest DynamoDB
 * call that had finished when it started: calls issued together (Promise.all) share a depth, a
 * call that waited for another is one deeper. So the deepest depth is the count of sequential
 * round trips. Used by the budget tests (test/integration/ws-budget.test.ts) and the benchmarks.
 */
export interface ProbeCall {
  readonly kind: 'db' | 'post';
  readonly name: string;
  readonly depth: number;
  readonly tables: readonly string[];
  /** Capacity units DynamoDB would bill (dynalite's ConsumedCapacity, which follows DynamoDB's rules). */
  readUnits: number;
  writeUnits: number;
  /** Items a Query or Scan read before filtering. */
  scanned: number;
  /** Items returned. */
  returned: number;
  done: boolean;
}

const READS = new Set(['GetItemCommand', 'BatchGetItemCommand', 'QueryCommand', 'ScanCommand']);
const CAPACITY = new Set([
  'GetItemCommand',
  'BatchGetItemCommand',
  'QueryCommand',
  'ScanCommand',
  'PutItemCommand',
  'UpdateItemCommand',
  'DeleteItemCommand',
  'BatchWriteItemCommand',
]);

interface Capacity {
  CapacityUnits?: number;
}

/**
 * Counts the DynamoDB calls of a client (an SDK middleware that also asks for
 * ReturnConsumedCapacity=TOTAL) and, optionally, the posts of a ConnectionsApi.
 */
export class RoundTripProbe {
  readonly calls: ProbeCall[] = [];
  private finishedDepth = 0;
  private generation = 0;
  inFlight = 0;

  constructor(private readonly name = `roundTripProbe${Math.random().toString(36).slice(2)}`) {}

  attach(db: DynamoDBClient): () => void {
    db.middlewareStack.add(
      (next, context) => async (args) => {
        const name = context.commandName ?? 'unknown';
        const input = args.input as Record<string, unknown>;
        if (CAPACITY.has(name)) input.ReturnConsumedCapacity ??= 'TOTAL';
        const tables =
          typeof input.TableName === 'string'
            ? [input.TableName]
            : Object.keys((input.RequestItems as Record<string, unknown> | undefined) ?? {});
        const call = this.begin('db', name, tables);
        try {
          const result = await next(args);
          const out = result.output as {
            ConsumedCapacity?: Capacity | Capacity[];
            ScannedCount?: number;
            Count?: number;
            Item?: unknown;
            Items?: unknown[];
            Responses?: Record<string, unknown[]>;
          };
          const cc = out.ConsumedCapacity;
          const units = (Array.isArray(cc) ? cc : cc ? [cc] : []).reduce(
            (sum, c) => sum + (c.CapacityUnits ?? 0),
            0,
          );
          if (READS.has(name)) call.readUnits = units;
          else call.writeUnits = units;
          call.scanned = out.ScannedCount ?? 0;
          call.returned =
            out.Count ??
            (out.Item ? 1 : 0) + Object.values(out.Responses ?? {}).reduce((n, items) => n + items.length, 0);
          return result;
        } finally {
          this.end(call);
        }
      },
      { step: 'initialize', name: this.name },
    );
    return () => db.middlewareStack.remove(this.name);
  }

  /** A ConnectionsApi that records every post and close, then answers as `inner` does (or "delivered"). */
  wrapApi(inner?: ConnectionsApi): ConnectionsApi {
    return {
      post: async (id, data) => {
        const call = this.begin('post', 'PostToConnection', []);
        try {
          return inner ? await inner.post(id, data) : true;
        } finally {
          this.end(call);
        }
      },
      close: async (id) => {
        const call = this.begin('post', 'DeleteConnection', []);
        try {
          return inner ? await inner.close(id) : true;
        } finally {
          this.end(call);
        }
      },
      exists: async (id) => (inner ? inner.exists(id) : true),
    };
  }

  private begin(kind: 'db' | 'post', name: string, tables: string[]): ProbeCall & { generation: number } {
    const call = {
      kind,
      name,
      tables,
      depth: this.finishedDepth + 1,
      readUnits: 0,
      writeUnits: 0,
      scanned: 0,
      returned: 0,
      done: false,
      generation: this.generation,
    };
    this.calls.push(call);
    this.inFlight++;
    return call;
  }

  private end(call: ProbeCall & { generation?: number }): void {
    this.inFlight--;
    call.done = true;
    if (call.generation !== this.generation) return;
    if (call.kind === 'db') this.finishedDepth = Math.max(this.finishedDepth, call.depth);
  }

  reset(): void {
    this.calls.length = 0;
    this.finishedDepth = 0;
    this.generation++;
  }

  db(): ProbeCall[] {
    return this.calls.filter((c) => c.kind === 'db');
  }

  /** What the recorded calls add up to. */
  summary(): RouteCost {
    const db = this.db();
    const firstPost = this.calls.findIndex((c) => c.kind === 'post');
    const beforeFanOut =
      firstPost === -1 ? db : this.calls.slice(0, firstPost).filter((c) => c.kind === 'db');
    return {
      operations: db.length,
      roundTrips: Math.max(0, ...db.map((c) => c.depth)),
      roundTripsBeforeFanOut: Math.max(0, ...beforeFanOut.map((c) => c.depth)),
      readUnits: db.reduce((s, c) => s + c.readUnits, 0),
      writeUnits: db.reduce((s, c) => s + c.writeUnits, 0),
      posts: this.calls.filter((c) => c.name === 'PostToConnection').length,
      names: db.map((c) => `${c.name.replace(/Command$/, '')}@${c.depth}`),
      scans: db.filter((c) => c.name === 'ScanCommand').length,
    };
  }
}

export interface RouteCost {
  readonly operations: number;
  readonly roundTrips: number;
  readonly roundTripsBeforeFanOut: number;
  readonly readUnits: number;
  readonly writeUnits: number;
  readonly posts: number;
  /** `Operation@depth`, in start order. */
  readonly names: readonly string[];
  readonly scans: number;
}
