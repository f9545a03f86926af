import { randomBytes } from 'node:crypto';
import {
  BatchWriteItemCommand,
  type DynamoDBClient,
  ScanCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { roomMembers } from '../lambdas/core/room-members.ts';
import { SOCKET_TTL_S, socketRowKey } from '../lambdas/core/socket-rows.ts';
import { allPages, type Item } from '../lambdas/core/store.ts';
import { localTableNames } from '../lambdas/core/tables.ts';
import { ensureTables, localDynamoClient, startDynalite } from '../local/dynamo.ts';
import { RoundTripProbe } from '../test/kit/round-trips.ts';
import { fmt, mapLimit, median, progress, ratio, type Section, table, timed } from './support.ts';

export const FANOUT_ROOM = 50;

export interface FanoutPoint {
  readonly connections: number;
  readonly ours: Lookup;
  readonly scan: Lookup;
  /** Bytes of the whole connections table (DynamoDB's item-size rules), which a Scan bills. */
  readonly tableBytes: number;
}

export interface Lookup {
  readonly ms: number;
  readonly itemsRead: number;
  readonly readUnits: number;
  readonly requests: number;
  readonly recipients: number;
}

export interface FanoutResult {
  readonly points: readonly FanoutPoint[];
  readonly section: Section;
}

/** DynamoDB's item size: attribute names plus values (strings as UTF-8, numbers ~ digits/2 + 1). */
function itemBytes(item: Item): number {
  let size = 0;
  for (const [name, v] of Object.entries(item)) {
    size += Buffer.byteLength(name);
    if (v.S !== undefined) size += Buffer.byteLength(v.S);
    else if (v.N !== undefined) size += Math.ceil(v.N.replace(/^-/, '').length / 2) + 1;
    else if (v.SS) size += v.SS.reduce((s, x) => s + Buffer.byteLength(x), 0);
  }
  return size;
}

/** The rows `putSocketRow` and `joinRoom` write for one socket in one room (lambdas/core/socket-rows.ts, memberships.ts). */
function socketRows(i: number, room: string, now: number): Item[] {
  const connectionId = `${randomBytes(11).toString('base64url')}=`;
  const username = `user${i}`;
  const expiresAt = { N: String(Math.floor(now / 1000) + SOCKET_TTL_S) };
  return [
    {
      ...socketRowKey(connectionId),
      connectionId: { S: connectionId },
      sub: { S: `sub-${randomBytes(8).toString('hex')}` },
      username: { S: username },
      roles: { SS: ['user'] },
      jti: { S: randomBytes(16).toString('hex') },
      sid: { S: randomBytes(16).toString('hex') },
      exp: { N: String(Math.floor(now / 1000) + 900) },
      iat: { N: String(Math.floor(now / 1000)) },
      ip: { S: `198.51.100.${i % 250}` },
      connectedAt: { N: String(now) },
      expiresAt,
      rooms: { SS: [room] },
    },
    {
      pk: { S: `room#${room}` },
      sk: { S: connectionId },
      memberName: { S: username },
      memberSub: { S: `sub-${i}` },
      expiresAt,
    },
  ];
}

async function writeAll(db: DynamoDBClient, table: string, items: Item[]): Promise<void> {
  const batches: WriteRequest[][] = [];
  for (let i = 0; i < items.length; i += 25) {
    batches.push(items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } })));
  }
  await mapLimit(batches, 4, async (batch) => {
    let pending = batch;
    while (pending.length > 0) {
      const out = await db.send(new BatchWriteItemCommand({ RequestItems: { [table]: pending } }));
      pending = out.UnprocessedItems?.[table] ?? [];
    }
  });
}

/**
 * The approach of the widely copied AWS sample (simple-websockets-chat-app), written here from
 * its description: on every message, Scan the whole connections table and post to what it finds.
 * The sample has no rooms; the room-aware version of it filters the Scan, which still reads (and
 * bills) every item of the table. Paginates over 1 MB pages as DynamoDB does.
 */
export async function scanRoom(db: DynamoDBClient, table: string, room: string): Promise<string[]> {
  const items = await allPages((start) =>
    db.send(
      new ScanCommand({
        TableName: table,
        FilterExpression: 'pk = :room',
        ExpressionAttributeValues: { ':room': { S: `room#${room}` } },
        ProjectionExpression: 'sk',
        ExclusiveStartKey: start,
      }),
    ),
  );
  return items.flatMap((item) => (item.sk?.S ? [item.sk.S] : []));
}

/**
 * Measurement 2: the recipients of one message to a room of 50, found our way (one Query on
 * the room's partition, `roomMembers`) and the Scan way, over the same table in dynalite, as
 * the table grows. Reads and capacity come from dynalite's ConsumedCapacity and ScannedCount.
 */
export async function measureFanout(sizes: readonly number[], repeats = 5): Promise<FanoutResult> {
  const dynamo = await startDynalite({});
  const db = localDynamoClient(dynamo.endpoint);
  const tables = localTableNames('fan-');
  await ensureTables(db, tables);
  const probe = new RoundTripProbe();
  probe.attach(db);
  const deps = { db, tables };
  const points: FanoutPoint[] = [];
  let stored = 0;
  let tableBytes = 0;
  const now = Date.now();
  try {
    for (const size of sizes) {
      const t = await timed(async () => {
        const items: Item[] = [];
        for (let i = stored; i < size; i++)
          items.push(...socketRows(i, `room-${Math.floor(i / FANOUT_ROOM)}`, now));
        tableBytes += items.reduce((s, it) => s + itemBytes(it), 0);
        await writeAll(db, tables.connections, items);
      });
      stored = size;
      progress(`fan-out: ${size} connections stored (${fmt(t.ms / 1000)} s)`);
      const room = `room-${Math.floor(size / FANOUT_ROOM / 2)}`;
      const run = async (find: () => Promise<unknown[]>, times: number): Promise<Lookup> => {
        const samples: number[] = [];
        let last = { itemsRead: 0, readUnits: 0, requests: 0, recipients: 0 };
        for (let r = 0; r < times; r++) {
          probe.reset();
          const { ms, value } = await timed(find);
          const calls = probe.db();
          samples.push(ms);
          last = {
            itemsRead: calls.reduce((s, c) => s + (c.scanned || c.returned), 0),
            readUnits: calls.reduce((s, c) => s + c.readUnits, 0),
            requests: calls.length,
            recipients: value.length,
          };
        }
        return { ms: median(samples), ...last };
      };
      const ours = await run(() => roomMembers(deps, room), repeats);
      // The Scan gets fewer repeats on big tables: its cost is the point, and it is slow.
      const scan = await run(() => scanRoom(db, tables.connections, room), size >= 20_000 ? 3 : repeats);
      if (ours.recipients !== FANOUT_ROOM || scan.recipients !== FANOUT_ROOM) {
        throw new Error(
          `fan-out found ${ours.recipients} and ${scan.recipients} recipients, not ${FANOUT_ROOM}`,
        );
      }
      points.push({ connections: size, ours, scan, tableBytes });
    }
  } finally {
    db.destroy();
    await dynamo.close();
  }
  return { points, section: fanoutSection(points) };
}

function fanoutSection(points: readonly FanoutPoint[]): Section {
  const line = (p: FanoutPoint, lookup: Lookup, label: string) => [
    fmt(p.connections),
    label,
    fmt(lookup.ms),
    lookup.requests,
    fmt(lookup.itemsRead),
    fmt(lookup.readUnits),
    lookup.recipients,
  ];
  const rows = points.flatMap((p) => [
    line(p, p.ours, 'ours: Query `room#R`'),
    line(p, p.scan, 'sample: Scan + filter'),
    [
      fmt(p.connections),
      '**Scan ÷ ours**',
      ratio(p.scan.ms, p.ours.ms),
      '',
      ratio(p.scan.itemsRead, p.ours.itemsRead),
      ratio(p.scan.readUnits, p.ours.readUnits),
      '',
    ],
  ]);
  const markdown = [
    table(['connections stored', 'lookup', 'median ms', 'requests', 'items read', 'RRU', 'recipients'], rows),
    '',
    growthNote(points),
    '',
    `Each stored connection is a socket row plus one membership row (the layout of lambdas/core/socket-rows.ts and memberships.ts), ` +
      `so the table holds twice as many items as connections; every room has ${FANOUT_ROOM} members. ` +
      "RRU from dynalite's ConsumedCapacity, which follows DynamoDB's rule: a Query or Scan is billed on the " +
      'bytes it reads, rounded up to 4 KB per 1 MB page, halved for eventually consistent reads; a Scan bills ' +
      'every item it reads, not just those its filter keeps. "items read" is ScannedCount. Latency is dynalite ' +
      'in this process, not DynamoDB: compare the ratio, not the milliseconds.',
  ].join('\n');
  return {
    title: `Fan-out lookup: Query vs the Scan sample (room of ${FANOUT_ROOM})`,
    markdown,
    failures: [],
  };
}

/** How each lookup grew from the fewest stored connections to the most. */
function growthNote(points: readonly FanoutPoint[]): string {
  const first = points[0];
  const last = points[points.length - 1];
  return first && last && last !== first
    ? `From ${fmt(first.connections)} to ${fmt(last.connections)} stored connections (×${fmt(last.connections / first.connections)}): ` +
        `our lookup's read units went ${fmt(first.ours.readUnits)} → ${fmt(last.ours.readUnits)} and its latency ` +
        `${fmt(first.ours.ms)} → ${fmt(last.ours.ms)} ms (flat: it reads the room, not the table); the Scan's read units went ` +
        `${fmt(first.scan.readUnits)} → ${fmt(last.scan.readUnits)} (×${fmt(last.scan.readUnits / first.scan.readUnits)}) and its latency ` +
        `${fmt(first.scan.ms)} → ${fmt(last.scan.ms)} ms: linear in the table, whatever the room's size.`
    : '';
}
