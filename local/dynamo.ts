import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AttributeDefinition,
  CreateTableCommand,
  DynamoDBClient,
  type GlobalSecondaryIndex,
  ListTablesCommand,
} from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { TABLE_KEYS, TABLES, type TableDef, type TableNames } from '../lambdas/core/tables.ts';
import { type SigningCredentials, verifySigV4 } from './sigv4.ts';

export interface LocalDynamo {
  readonly endpoint: string;
  /** What requests must be signed with, when the store checks signatures. */
  readonly credentials: SigningCredentials | undefined;
  close(): Promise<void>;
}

/** Credentials made up for one run: a random secret that only this process (and running.json) holds. */
export function randomCredentials(): SigningCredentials {
  return { accessKeyId: 'local', secretAccessKey: randomBytes(32).toString('base64url') };
}

/**
 * Starts dynalite (DynamoDB's protocol over LevelDB) in this process: on disk in
 * `path`, or in memory when `path` is undefined. dynalite itself checks no signature;
 * with `credentials`, every request must carry a SigV4 signature made with them (as
 * DynamoDB requires), so another local process that finds the loopback port cannot read
 * or change the store.
 */
export async function startDynalite(options: {
  path?: string | undefined;
  port?: number;
  host?: string;
  credentials?: SigningCredentials;
}): Promise<LocalDynamo> {
  if (options.path) await mkdir(options.path, { recursive: true });
  const server = dynalite({ path: options.path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const { credentials } = options;
  // Operations still running when the store closes would write to a closed database, which
  // dynalite answers by throwing out of a callback (the process dies): count them, refuse
  // new ones once closing, and close only when they are done.
  const operations = new RunningOperations();
  let closing = false;
  guardRequests(server, operations, (req) =>
    closing ? CLOSING : credentials ? signatureRefusal(req, credentials) : undefined,
  );
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://${host}:${port}`,
    credentials,
    close: async () => {
      closing = true;
      await operations.settled(10_000);
      await new Promise<void>((resolve, reject) => {
        server.closeIdleConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      });
    },
  };
}

interface Refusal {
  readonly status: number;
  readonly type: string;
  readonly message: string;
}

const CLOSING: Refusal = { status: 503, type: 'ServiceUnavailable', message: 'the store is closing' };

/**
 * Puts a check before dynalite's own request listeners: a refused request is answered here
 * in DynamoDB's error shape; one that passes is counted by `operations` while it runs.
 */
function guardRequests(
  server: Server,
  operations: RunningOperations,
  refusalOf: (req: IncomingMessage) => Refusal | undefined,
): void {
  const serve = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const refusal = refusalOf(req);
    if (refusal) {
      const body = JSON.stringify({
        __type: `com.amazon.coral.service#${refusal.type}`,
        message: refusal.message,
      });
      req.resume();
      res.writeHead(refusal.status, {
        'content-type': 'application/x-amz-json-1.0',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
    operations.track(res);
    for (const listener of serve) listener.call(server, req, res);
  });
}

/** The store's operations in progress, so that closing can wait for them. */
class RunningOperations {
  private running = 0;
  private idle = () => {};

  /** Counts `res` as running until dynalite ends it (as it does even if the client has gone). */
  track(res: ServerResponse): void {
    this.running++;
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    let done = false;
    res.end = ((...args: unknown[]) => {
      if (!done) {
        done = true;
        this.running--;
        if (this.running === 0) this.idle();
      }
      return end(...args);
    }) as ServerResponse['end'];
  }

  /** Resolves once none is running, or after `maxMs` at the most. */
  async settled(maxMs: number): Promise<void> {
    if (this.running === 0) return;
    await Promise.race([
      new Promise<void>((resolve) => {
        this.idle = resolve;
      }),
      new Promise((resolve) => setTimeout(resolve, maxMs).unref()),
    ]);
  }
}

/**
 * DynamoDB's answer to an unsigned or badly signed request, or undefined for a good one.
 * The body's hash is the signed `x-amz-content-sha256` the SDK always sends (reading the
 * body here would take it from dynalite); only a client holding the secret can sign.
 */
function signatureRefusal(req: IncomingMessage, credentials: SigningCredentials): Refusal | undefined {
  const claimed = req.headers['x-amz-content-sha256'];
  const signed = /SignedHeaders=[^,]*\bx-amz-content-sha256\b/.test(req.headers.authorization ?? '');
  if (req.headers.authorization && (typeof claimed !== 'string' || !signed)) {
    return {
      status: 400,
      type: 'InvalidSignatureException',
      message: 'x-amz-content-sha256 must be sent and signed.',
    };
  }
  const verdict = verifySigV4(
    { method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers, bodySha256: String(claimed) },
    { credentials, region: 'local', service: 'dynamodb', now: Date.now() },
  );
  if (verdict.ok) return undefined;
  if (verdict.missing)
    return { status: 400, type: 'MissingAuthenticationTokenException', message: verdict.reason };
  return {
    status: 400,
    type: /security token/.test(verdict.reason) ? 'UnrecognizedClientException' : 'InvalidSignatureException',
    message: verdict.reason,
  };
}

/** A DynamoDB client for a local endpoint, signing with the store's credentials. */
export function localDynamoClient(
  endpoint: string,
  credentials: SigningCredentials = { accessKeyId: 'local', secretAccessKey: 'local' },
): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: 'local', credentials });
}

function createTableInput(def: TableDef, name: string) {
  const attrs = new Map<string, AttributeDefinition>();
  const add = (a: { name: string; type: 'S' | 'N' } | undefined) => {
    if (a) attrs.set(a.name, { AttributeName: a.name, AttributeType: a.type });
  };
  add(def.partitionKey);
  add(def.sortKey);
  const indexes: GlobalSecondaryIndex[] = def.indexes.map((ix) => {
    add(ix.partitionKey);
    add(ix.sortKey);
    return {
      IndexName: ix.indexName,
      KeySchema: [
        { AttributeName: ix.partitionKey.name, KeyType: 'HASH' },
        ...(ix.sortKey ? [{ AttributeName: ix.sortKey.name, KeyType: 'RANGE' as const }] : []),
      ],
      Projection:
        typeof ix.projection === 'string'
          ? { ProjectionType: ix.projection }
          : { ProjectionType: 'INCLUDE', NonKeyAttributes: [...ix.projection] },
    };
  });
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST' as const,
    AttributeDefinitions: [...attrs.values()],
    KeySchema: [
      { AttributeName: def.partitionKey.name, KeyType: 'HASH' as const },
      ...(def.sortKey ? [{ AttributeName: def.sortKey.name, KeyType: 'RANGE' as const }] : []),
    ],
    ...(indexes.length > 0 ? { GlobalSecondaryIndexes: indexes } : {}),
  };
}

/**
 * Creates every table of `TABLES` that does not exist yet (idempotent: existing data
 * stays). TTL is not configured locally: dynalite does not delete expired items, and
 * every read checks `expiresAt` anyway.
 */
export async function ensureTables(client: DynamoDBClient, names: TableNames): Promise<void> {
  const existing = new Set<string>();
  let start: string | undefined;
  do {
    const out = await client.send(new ListTablesCommand({ ExclusiveStartTableName: start }));
    for (const n of out.TableNames ?? []) existing.add(n);
    start = out.LastEvaluatedTableName;
  } while (start);
  for (const key of TABLE_KEYS) {
    if (!existing.has(names[key]))
      await client.send(new CreateTableCommand(createTableInput(TABLES[key], names[key])));
  }
}
