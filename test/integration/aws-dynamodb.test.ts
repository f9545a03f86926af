import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  CreateTableCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dynamoEndpoint, leanDynamoClient } from '../../lambdas/aws/dynamodb.ts';
import { TABLE_KEYS, tableEnvName } from '../../lambdas/core/tables.ts';
import { runtime } from '../../lambdas/runtime.ts';
import { type LocalDynamo, localDynamoClient, randomCredentials, startDynalite } from '../../local/dynamo.ts';
import { expectedSignature, signatureOf, standIn } from '../kit/sigv4.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
});

const credentials = randomCredentials();
let dynamo: LocalDynamo;
const TABLE = 'lean-items';

beforeAll(async () => {
  // The store checks every request's SigV4 signature against these credentials, as DynamoDB does.
  dynamo = await startDynalite({ credentials });
  await localDynamoClient(dynamo.endpoint, credentials).send(
    new CreateTableCommand({
      TableName: TABLE,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  return () => dynamo.close();
});

const lean = () => {
  const db = leanDynamoClient({ endpoint: dynamo.endpoint, region: 'local', credentials });
  cleanups.push(() => db.destroy());
  return db;
};
const strip = <T extends { $metadata?: unknown }>(out: T) => {
  const { $metadata: _m, ...rest } = out;
  return rest;
};

describe('the lean DynamoDB client', () => {
  it('writes and reads every attribute type as the SDK client reads them, signed as the store requires', async () => {
    const db = lean();
    const item: Record<string, AttributeValue> = {
      pk: { S: 'p1' },
      sk: { S: 'a' },
      n: { N: '42.5' },
      b: { B: new Uint8Array([0, 1, 254, 255]) },
      ss: { SS: ['x', 'y'] },
      ns: { NS: ['1', '2'] },
      l: { L: [{ S: 'one' }, { N: '2' }, { BOOL: false }] },
      m: { M: { inner: { S: 'deep' }, nothing: { NULL: true } } },
      t: { BOOL: true },
      s: { S: 'ünïcødé ✓' },
    };
    await db.send(new PutItemCommand({ TableName: TABLE, Item: item }));
    const key = { pk: { S: 'p1' }, sk: { S: 'a' } };
    const ours = await db.send(new GetItemCommand({ TableName: TABLE, Key: key, ConsistentRead: true }));
    const sdk = await localDynamoClient(dynamo.endpoint, credentials).send(
      new GetItemCommand({ TableName: TABLE, Key: key, ConsistentRead: true }),
    );
    expect(ours.Item).toEqual(sdk.Item);
    expect(ours.Item?.b?.B).toBeInstanceOf(Uint8Array);
    expect([...(ours.Item?.b?.B ?? [])]).toEqual([0, 1, 254, 255]);
    expect(ours.$metadata.httpStatusCode).toBe(200);
  });

  it('queries, updates, batch-writes and batch-reads like the SDK client', async () => {
    const db = lean();
    await db.send(
      new BatchWriteItemCommand({
        RequestItems: {
          [TABLE]: ['1', '2', '3'].map((sk) => ({
            PutRequest: { Item: { pk: { S: 'q' }, sk: { S: sk }, v: { N: sk } } },
          })),
        },
      }),
    );
    const query = await db.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: 'pk = :p AND sk > :s',
        ExpressionAttributeValues: { ':p': { S: 'q' }, ':s': { S: '1' } },
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    expect(query.Items?.map((i) => i.sk?.S)).toEqual(['2', '3']);
    expect(query.Count).toBe(2);
    expect(query.ConsumedCapacity?.TableName).toBe(TABLE);

    const updated = await db.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: { pk: { S: 'q' }, sk: { S: '1' } },
        UpdateExpression: 'ADD v :one',
        ExpressionAttributeValues: { ':one': { N: '1' } },
        ReturnValues: 'ALL_NEW',
      }),
    );
    expect(updated.Attributes?.v).toEqual({ N: '2' });

    const batch = await db.send(
      new BatchGetItemCommand({
        RequestItems: {
          [TABLE]: {
            Keys: [
              { pk: { S: 'q' }, sk: { S: '1' } },
              { pk: { S: 'q' }, sk: { S: 'missing' } },
            ],
          },
        },
      }),
    );
    expect(batch.Responses?.[TABLE]).toEqual([{ pk: { S: 'q' }, sk: { S: '1' }, v: { N: '2' } }]);
    expect(
      strip(
        await db.send(new DeleteItemCommand({ TableName: TABLE, Key: { pk: { S: 'q' }, sk: { S: '3' } } })),
      ),
    ).toEqual({});
  });

  it("fails a write whose condition does not hold with the service's error name, status and fields", async () => {
    const db = lean();
    const item = { pk: { S: 'c' }, sk: { S: 'once' }, v: { N: '1' } };
    await db.send(
      new PutItemCommand({ TableName: TABLE, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }),
    );
    const err = (await db
      .send(
        new PutItemCommand({
          TableName: TABLE,
          Item: { ...item, v: { N: '2' } },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      )
      .catch((e: unknown) => e)) as Error & { $metadata?: { httpStatusCode?: number }; $fault?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ConditionalCheckFailedException');
    expect(err.$metadata?.httpStatusCode).toBe(400);
    expect(err.$fault).toBe('client');
    expect(err.message).toMatch(/conditional request failed/i);
  });

  it('is refused by the store when it signs with another secret', async () => {
    const db = leanDynamoClient({
      endpoint: dynamo.endpoint,
      region: 'local',
      credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: 'not-the-secret' },
    });
    cleanups.push(() => db.destroy());
    const err = (await db
      .send(new GetItemCommand({ TableName: TABLE, Key: { pk: { S: 'p1' }, sk: { S: 'a' } } }))
      .catch((e: unknown) => e)) as Error & { $metadata?: { httpStatusCode?: number } };
    expect(err.name).toMatch(/InvalidSignatureException|UnrecognizedClientException/);
    expect(err.$metadata?.httpStatusCode).toBe(400);
  });
});

describe('its retries', () => {
  /** A stand-in DynamoDB endpoint answering each request with the next of `answers` (the last repeats). */
  async function endpoint(answers: { status: number; type?: string }[]) {
    let n = 0;
    const { url, seen } = await standIn(cleanups, (_req, _body, res) => {
      const a = answers[Math.min(n++, answers.length - 1)] as { status: number; type?: string };
      res.writeHead(a.status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': `r${n}` });
      res.end(
        a.type
          ? JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${a.type}`, message: 'no' })
          : '{}',
      );
    });
    const delays: number[] = [];
    const db = leanDynamoClient({
      endpoint: url,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKID', secretAccessKey: 'secret', sessionToken: 'tok' },
      sleep: async (ms) => {
        delays.push(ms);
      },
    });
    cleanups.push(() => db.destroy());
    const get = () => db.send(new GetItemCommand({ TableName: 't', Key: { pk: { S: 'k' } } }));
    return { seen, delays, get };
  }

  it('tries throttling and server errors again, up to 4 tries, with growing jittered backoff', async () => {
    const throttled = await endpoint([
      { status: 400, type: 'ProvisionedThroughputExceededException' },
      { status: 400, type: 'ThrottlingException' },
      { status: 500, type: 'InternalServerError' },
      { status: 200 },
    ]);
    expect(strip(await throttled.get())).toEqual({});
    expect(throttled.seen).toHaveLength(4);
    expect(throttled.delays).toHaveLength(3);
    throttled.delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(25 * 2 ** (i + 1));
    });

    const down = await endpoint([{ status: 503, type: 'ServiceUnavailable' }]);
    const err = (await down.get().catch((e: unknown) => e)) as Error & {
      $metadata?: { httpStatusCode?: number };
    };
    expect(err.name).toBe('ServiceUnavailable');
    expect(err.$metadata?.httpStatusCode).toBe(503);
    expect(down.seen).toHaveLength(4);
  });

  it('tries a request again when its connection is cut before any answer', async () => {
    let cut = 0;
    const { url, seen } = await standIn(cleanups, (_req, _body, res, socket) => {
      if (cut++ === 0) {
        socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end('{"Item":{"pk":{"S":"k"}}}');
    });
    const db = leanDynamoClient({
      endpoint: url,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKID', secretAccessKey: 'secret' },
      sleep: async () => {},
    });
    cleanups.push(() => db.destroy());
    const out = await db.send(new GetItemCommand({ TableName: 't', Key: { pk: { S: 'k' } } }));
    expect(out.Item).toEqual({ pk: { S: 'k' } });
    expect(seen).toHaveLength(2);
  });

  it('does not retry a client error, and signs every try afresh for dynamodb in its region', async () => {
    const invalid = await endpoint([{ status: 400, type: 'ValidationException' }]);
    const err = (await invalid.get().catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('ValidationException');
    expect(invalid.seen).toHaveLength(1);
    const [{ req, body }] = invalid.seen as [(typeof invalid.seen)[number]];
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/');
    expect(req.headers['x-amz-target']).toBe('DynamoDB_20120810.GetItem');
    expect(req.headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(req.headers['x-amz-security-token']).toBe('tok');
    expect(String(req.headers.authorization)).toMatch(
      /Credential=AKID\/\d{8}\/eu-west-1\/dynamodb\/aws4_request/,
    );
    expect(signatureOf(req)).toBe(expectedSignature(req, body, 'secret'));
    expect(JSON.parse(body.toString())).toEqual({ TableName: 't', Key: { pk: { S: 'k' } } });
  });
});

describe("a function's runtime", () => {
  it("reaches DynamoDB through the lean client, signed with the environment's credentials", async () => {
    const { url, seen } = await standIn(cleanups, (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end('{"Item":{"pk":{"S":"k"}}}');
    });
    const env: NodeJS.ProcessEnv = {
      AWS_REGION: 'sa-east-1',
      AWS_ACCESS_KEY_ID: 'ASIAROLE',
      AWS_SECRET_ACCESS_KEY: 'role-secret',
      AWS_SESSION_TOKEN: 'role-session',
      AWS_ENDPOINT_URL_DYNAMODB: url,
      TOKEN_ISSUER: 'https://x.example',
      TOKEN_AUDIENCE: 'urn:x',
      ALLOWED_ORIGINS: 'https://app.example.com',
    };
    for (const key of TABLE_KEYS) env[tableEnvName(key)] = `t-${key}`;
    // runtime() builds once per process: this file's own process, so this is its first build.
    const { db } = runtime(env);
    const out = await db.send(new GetItemCommand({ TableName: 't-users', Key: { pk: { S: 'k' } } }));
    expect(out.Item).toEqual({ pk: { S: 'k' } });
    const [{ req, body }] = seen as [(typeof seen)[number]];
    expect(String(req.headers.authorization)).toMatch(
      /Credential=ASIAROLE\/\d{8}\/sa-east-1\/dynamodb\/aws4_request/,
    );
    expect(req.headers['x-amz-security-token']).toBe('role-session');
    expect(signatureOf(req)).toBe(expectedSignature(req, body, 'role-secret'));
  });

  it('finds the regional endpoint, or the one the environment names', () => {
    expect(dynamoEndpoint({}, 'eu-central-1')).toBe('https://dynamodb.eu-central-1.amazonaws.com');
    expect(dynamoEndpoint({}, 'cn-north-1')).toBe('https://dynamodb.cn-north-1.amazonaws.com.cn');
    expect(dynamoEndpoint({ AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:1' }, 'x')).toBe(
      'http://127.0.0.1:1',
    );
    expect(
      dynamoEndpoint({ DYNAMODB_ENDPOINT: 'http://127.0.0.1:2', AWS_ENDPOINT_URL: 'http://h' }, 'x'),
    ).toBe('http://127.0.0.1:2');
  });
});
