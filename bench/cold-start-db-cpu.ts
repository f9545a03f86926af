import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { leanDynamoClient } from '../lambdas/aws/dynamodb.ts';
import { localDynamoClient } from '../local/dynamo.ts';
import { fmt, mapLimit, median, ratio, table } from './support.ts';

export interface DbCallCost {
  readonly call: string;
  /** CPU µs per call through the SDK's `DynamoDBClient`. */
  readonly sdkUs: number;
  /** Through the functions' client, lambdas/aws/dynamodb.ts. */
  readonly leanUs: number;
}

/** A room's membership page as DynamoDB answers a Query: 50 items of the connection table's shape. */
function queryAnswer(): string {
  const items = Array.from({ length: 50 }, (_, i) => ({
    pk: { S: 'room#lobby' },
    sk: { S: `conn#c${String(i).padStart(11, '0')}=` },
    username: { S: `user${i}` },
    expiresAt: { N: String(2_000_000_000 + i) },
  }));
  return JSON.stringify({ Count: 50, ScannedCount: 50, Items: items });
}

/**
 * The CPU of one DynamoDB call in this process through the SDK's full client and through the
 * functions' client, both to a stand-in that answers at once (GetItem: one item; Query: a room
 * of 50), 16 at a time as a fan-out reads, in alternating rounds.
 */
export async function measureDbCallCost(calls = 2000, rounds = 3): Promise<DbCallCost[]> {
  const query = queryAnswer();
  const get = JSON.stringify({
    Item: { pk: { S: 'user#cold' }, username: { S: 'cold' }, roles: { SS: ['user'] } },
  });
  const server = createServer((req, res) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    req.resume();
    req.on('end', () => {
      const body = target.endsWith('.Query') ? query : get;
      res.writeHead(200, {
        'content-type': 'application/x-amz-json-1.0',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' };
  const sdk = localDynamoClient(endpoint, credentials);
  const lean = leanDynamoClient({ endpoint, region: 'local', credentials });
  const commands = {
    GetItem: () => new GetItemCommand({ TableName: 'users', Key: { pk: { S: 'user#cold' } } }),
    'Query (room of 50)': () =>
      new QueryCommand({
        TableName: 'connections',
        KeyConditionExpression: 'pk = :r',
        ExpressionAttributeValues: { ':r': { S: 'room#lobby' } },
      }),
  };
  const ids = Array.from({ length: calls }, (_, i) => i);
  const cpuPerCall = async (send: () => Promise<unknown>): Promise<number> => {
    await mapLimit(ids.slice(0, 200), 16, send);
    const before = process.cpuUsage();
    await mapLimit(ids, 16, send);
    const cpu = process.cpuUsage(before);
    return (cpu.user + cpu.system) / calls;
  };
  try {
    const out: DbCallCost[] = [];
    for (const [call, make] of Object.entries(commands)) {
      const samples = { sdk: [] as number[], lean: [] as number[] };
      for (let i = 0; i < rounds; i++) {
        samples.sdk.push(await cpuPerCall(() => sdk.send(make() as GetItemCommand)));
        samples.lean.push(await cpuPerCall(() => lean.send(make() as GetItemCommand)));
      }
      out.push({ call, sdkUs: median(samples.sdk), leanUs: median(samples.lean) });
    }
    return out;
  } finally {
    sdk.destroy();
    lean.destroy();
    await new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  }
}

export function dbCallCostMarkdown(rows: readonly DbCallCost[]): string {
  return [
    "**DynamoDB calls: the functions' client vs the SDK's**, CPU per call in this process (a stand-in " +
      'answering at once, 16 in flight, median of 3 alternating rounds):',
    '',
    table(
      ['call', "CPU µs, SDK's DynamoDBClient", "CPU µs, the functions' client", '÷ SDK client'],
      rows.map((r) => [r.call, fmt(r.sdkUs), fmt(r.leanUs), ratio(r.leanUs, r.sdkUs)]),
    ),
    '',
    "The stand-in shares the process, so its own CPU is in both figures. Both run the SDK's commands, schemas and JSON codec; the functions' client leaves out the middleware " +
      'that resolves endpoints, user agent and retry state per call, and sends through the signed keep-alive ' +
      'transport the `@connections` posts use.',
  ].join('\n');
}
