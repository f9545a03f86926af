import type { FanoutPoint } from './fanout.ts';
import type { RouteRow } from './routes.ts';
import { fmt, type Section, table, usd } from './support.ts';

/**
 * Public on-demand prices, us-east-1, as of the bench's writing (November 2024 DynamoDB cut
 * included), from the AWS price pages as known then and checked against secondary sources:
 * re-check https://aws.amazon.com/api-gateway/pricing/, /lambda/pricing/, /dynamodb/pricing/.
 */
export const PRICES = {
  asOf: 'the public price pages as known in 2025 (DynamoDB on-demand prices cut on 1 November 2024)',
  region: 'us-east-1',
  wsMessage: 1.0 / 1e6, // per message, metered in 32 KB units, first billion a month
  connectionMinute: 0.25 / 1e6,
  lambdaRequest: 0.2 / 1e6,
  lambdaGbSecondArm: 0.0000133334,
  readUnit: 0.125 / 1e6,
  writeUnit: 0.625 / 1e6,
} as const;

/**
 * What cannot be measured on this machine, assumed and stated: in-region latencies that set a
 * Lambda's billed duration, the fan-out concurrency of lambdas/core/sockets.ts, and how clients use
 * their sockets.
 */
export const ASSUMPTIONS = {
  dynamoRoundTripMs: 6,
  scanPageMs: 40, // one 1 MB Scan page
  postMs: 12, // one PostToConnection
  cpuMs: 3,
  fanoutConcurrency: 16,
  memoryGb: 0.25, // the stack's default 256 MB
  pingEveryMin: 5, // web/client.ts DEFAULT_PING_MS: API Gateway closes idle sockets after 10 minutes
  sessionMinutes: 30,
  /** Extra write units DynamoDB bills for the GSIs (byUser, bySid) when a connection row is written or deleted. */
  gsiWritesPerConnectionRow: 2,
} as const;

/**
 * A chat message's request units before messages were numbered, as this bench measured them
 * on that code (UpdateItem@1, BatchGetItem@1, Query@2, BatchGetItem@2, PutItem@3: 10.5 RRU,
 * 2 WRU): the baseline that the per-room `seq` update and the idempotency record are weighed against.
 */
export const BEFORE_NUMBERING = { readUnits: 10.5, writeUnits: 2 } as const;

interface Bill {
  apiGateway: number;
  lambda: number;
  dynamo: number;
}

const total = (b: Bill) => b.apiGateway + b.lambda + b.dynamo;

function lambdaCost(durationMs: number): number {
  const billedMs = Math.max(1, Math.ceil(durationMs));
  return PRICES.lambdaRequest + (billedMs / 1000) * ASSUMPTIONS.memoryGb * PRICES.lambdaGbSecondArm;
}

function invocation(rt: number, posts: number, extraMs = 0): number {
  const a = ASSUMPTIONS;
  return lambdaCost(
    rt * a.dynamoRoundTripMs + Math.ceil(posts / a.fanoutConcurrency) * a.postMs + a.cpuMs + extraMs,
  );
}

const dynamo = (rru: number, wru: number) => rru * PRICES.readUnit + wru * PRICES.writeUnit;

export interface CostResult {
  readonly perMillionMessages: { ours: number; scan: { connections: number; cost: number }[] };
  readonly perMillionConnectionMinutes: { ours: number; scan: number };
  /** DynamoDB's part of a million chat messages: before numbering, now, and with an idempotencyKey. */
  readonly dynamoPerMillionMessages: { before: number; numbered: number; keyed: number };
  readonly section: Section;
  /** The Cost section of docs/deploy.md. */
  readonly deployDoc: string;
}

/** Measurement 6: dollars per million chat messages (room of 50) and per million connection-minutes. */
export function costModel(
  routes: readonly RouteRow[],
  fanout: readonly FanoutPoint[],
  roomSize: number,
): CostResult {
  const costs = routeCosts(routes);
  const messages = messageBills(costs, roomSize);
  const minutes = minuteBills(costs);
  const o = perM(messages.ours);
  const dynamoPerM = {
    before: perM(messages.before).dynamo,
    numbered: o.dynamo,
    keyed: perM(messages.keyed).dynamo,
  };
  const messageRows = [
    billRow('ours: Query the room', o),
    billRow('ours, with idempotencyKey', perM(messages.keyed)),
    billRow('ours before messages were numbered (no seq, no recovery)', perM(messages.before)),
    ...fanout.map((p) =>
      billRow(`Scan sample, ${fmt(p.connections)} connections stored`, perM(messages.scan(p))),
    ),
  ];
  const minuteRows = [
    billRow('ours', minutes.ours),
    billRow('Scan sample (no authorizer, no checks)', minutes.scan),
  ];
  const header = ['', 'API Gateway', 'Lambda', 'DynamoDB', 'total'];
  const tables = { messages: table(header, messageRows), minutes: table(header, minuteRows) };
  const markdown = costMarkdown(
    tables,
    costs,
    dynamoPerM,
    o.dynamo,
    crossover(fanout, messages.wsMessages),
    roomSize,
    messages.wsMessages,
  );
  return {
    perMillionMessages: {
      ours: total(messages.ours) * 1e6,
      scan: fanout.map((p) => ({ connections: p.connections, cost: total(messages.scan(p)) * 1e6 })),
    },
    perMillionConnectionMinutes: { ours: total(minutes.ours), scan: total(minutes.scan) },
    dynamoPerMillionMessages: dynamoPerM,
    section: { title: 'Cost model', markdown, failures: [] },
    deployDoc: deployCostDoc(tables, roomSize, messages.wsMessages),
  };
}

type RouteCost = RouteRow['cost'];

/** The measured routes the model prices. */
interface RouteCosts {
  readonly msg: RouteCost;
  readonly keyed: RouteCost;
  readonly ping: RouteCost;
  readonly auth: RouteCost;
  readonly connect: RouteCost;
  readonly disconnect: RouteCost;
}

function routeCosts(routes: readonly RouteRow[]): RouteCosts {
  const find = (prefix: string) => {
    const r = routes.find((x) => x.route.startsWith(prefix));
    if (!r) throw new Error(`no measurement for ${prefix}`);
    return r.cost;
  };
  return {
    msg: find('$default chat message (room of'),
    keyed: find('$default chat message with idempotencyKey'),
    ping: find('$default ping'),
    auth: find('authorizer'),
    connect: find('$connect'),
    disconnect: find('$disconnect'),
  };
}

/** The bills of one chat message: ours (plain, keyed, before numbering) and the Scan sample's at a table size. */
function messageBills({ msg, keyed }: RouteCosts, roomSize: number) {
  const a = ASSUMPTIONS;
  // One chat message: the frame in, one delivery per member, the ack back (route response).
  const wsMessages = 1 + roomSize + 1;
  const ours: Bill = {
    apiGateway: wsMessages * PRICES.wsMessage,
    lambda: invocation(msg.roundTripsBeforeFanOut, msg.posts),
    dynamo: dynamo(msg.readUnits, msg.writeUnits),
  };
  const keyedMessage: Bill = {
    apiGateway: wsMessages * PRICES.wsMessage,
    lambda: invocation(keyed.roundTripsBeforeFanOut, keyed.posts),
    dynamo: dynamo(keyed.readUnits, keyed.writeUnits),
  };
  const before: Bill = {
    apiGateway: wsMessages * PRICES.wsMessage,
    lambda: invocation(2, msg.posts),
    dynamo: dynamo(BEFORE_NUMBERING.readUnits, BEFORE_NUMBERING.writeUnits),
  };
  // The Scan sample: no rate limit, revocation check or history; one Scan (all pages, in turn), then the posts.
  const scan = (p: FanoutPoint): Bill => ({
    apiGateway: wsMessages * PRICES.wsMessage,
    lambda: lambdaCost(
      p.scan.requests * a.scanPageMs + Math.ceil(roomSize / a.fanoutConcurrency) * a.postMs + a.cpuMs,
    ),
    dynamo: dynamo(p.scan.readUnits, 0),
  });
  return { wsMessages, ours, keyed: keyedMessage, before, scan };
}

/** One million connection-minutes: the minutes, keep-alive pings, and the sockets' set-up and tear-down. */
function minuteBills({ ping, auth, connect, disconnect }: RouteCosts): { ours: Bill; scan: Bill } {
  const a = ASSUMPTIONS;
  const sockets = 1e6 / a.sessionMinutes;
  const pings = 1e6 / a.pingEveryMin;
  const ours: Bill = {
    apiGateway: 1e6 * PRICES.connectionMinute + pings * 2 * PRICES.wsMessage,
    lambda:
      pings * invocation(ping.roundTrips, 0) +
      sockets *
        (invocation(auth.roundTrips, 0) +
          invocation(connect.roundTrips, 0) +
          invocation(disconnect.roundTrips, 0)),
    dynamo:
      pings * dynamo(ping.readUnits, ping.writeUnits) +
      sockets *
        (dynamo(auth.readUnits, auth.writeUnits) +
          dynamo(connect.readUnits, connect.writeUnits + a.gsiWritesPerConnectionRow) +
          dynamo(disconnect.readUnits, disconnect.writeUnits + a.gsiWritesPerConnectionRow)),
  };
  // The sample: no authorizer, a PutItem and a DeleteItem per socket, pings answered by API Gateway alone (its best case).
  const scan: Bill = {
    apiGateway: 1e6 * PRICES.connectionMinute + pings * PRICES.wsMessage,
    lambda: sockets * 2 * invocation(1, 0),
    dynamo: sockets * dynamo(0, 2),
  };
  return { ours, scan };
}

const perM = (b: Bill): Bill => ({
  apiGateway: b.apiGateway * 1e6,
  lambda: b.lambda * 1e6,
  dynamo: b.dynamo * 1e6,
});

function billRow(label: string, b: Bill, scale = 1): string[] {
  const s = { apiGateway: b.apiGateway * scale, lambda: b.lambda * scale, dynamo: b.dynamo * scale };
  return [label, usd(s.apiGateway), usd(s.lambda), usd(s.dynamo), `**${usd(total(s))}**`];
}

/** Stored connections at which the Scan's read units cost as much as a message's WebSocket messages. */
function crossover(fanout: readonly FanoutPoint[], wsMessages: number): number {
  const last = fanout[fanout.length - 1];
  return last
    ? (wsMessages * PRICES.wsMessage) / ((last.scan.readUnits / last.connections) * PRICES.readUnit)
    : Number.NaN;
}

interface CostTables {
  readonly messages: string;
  readonly minutes: string;
}

function assumptionsNote(wsMessages: number, roomSize: number): string {
  const a = ASSUMPTIONS;
  return (
    `Prices: AWS public on-demand prices, ${PRICES.region}, from ${PRICES.asOf}: API Gateway WebSocket ` +
    '$1.00 per million messages (32 KB units) and $0.25 per million connection-minutes; Lambda arm64 ' +
    '$0.20 per million requests and $0.0000133334 per GB-second; DynamoDB on demand $0.125 per million read ' +
    'and $0.625 per million write request units. Counts (DynamoDB operations, request units, posts, round trips) ' +
    'are the ones measured above; what this machine cannot measure is assumed: ' +
    `${a.dynamoRoundTripMs} ms per DynamoDB round trip, ${a.scanPageMs} ms per 1 MB Scan page, ${a.postMs} ms ` +
    `per PostToConnection, ${a.fanoutConcurrency} posts at a time, ${a.cpuMs} ms of CPU, 256 MB functions, ` +
    `a ping every ${a.pingEveryMin} minutes (the web client's default), sockets that live ${a.sessionMinutes} ` +
    `minutes, ${a.gsiWritesPerConnectionRow} GSI write units per connection row written or deleted. A chat ` +
    `message costs ${wsMessages} WebSocket messages (in, ${roomSize} deliveries, the ack) in both designs. ` +
    'Free tiers, data transfer and CloudWatch Logs are left out.'
  );
}

/** The Cost model section of BENCHMARKS.md. */
function costMarkdown(
  tables: CostTables,
  { msg, keyed }: RouteCosts,
  dynamoPerM: CostResult['dynamoPerMillionMessages'],
  oursDynamo: number,
  crossoverConnections: number,
  roomSize: number,
  wsMessages: number,
): string {
  return [
    `**Per million chat messages, room of ${roomSize}:**`,
    '',
    tables.messages,
    '',
    '**Per million connection-minutes:**',
    '',
    tables.minutes,
    '',
    assumptionsNote(wsMessages, roomSize),
    '',
    `DynamoDB per chat message: ${BEFORE_NUMBERING.readUnits} RRU and ${BEFORE_NUMBERING.writeUnits} WRU before ` +
      `messages were numbered (${usd(dynamoPerM.before)} per million); ${msg.readUnits} RRU and ${msg.writeUnits} WRU ` +
      `now, the per-room \`seq\` UpdateItem included (${usd(dynamoPerM.numbered)}); ${keyed.readUnits} RRU and ` +
      `${keyed.writeUnits} WRU with an \`idempotencyKey\`, its conditional record included ` +
      `(${usd(dynamoPerM.keyed)}). A repeat of a key costs its refused write and one read, and no fan-out.`,
    '',
    'API Gateway dominates our bill: one chat message is 52 WebSocket messages. DynamoDB is ' +
      `${usd(oursDynamo)} of it per million, and stays so as the table grows; the Scan's read units grow with ` +
      `every stored connection, so its DynamoDB line overtakes API Gateway at about ${fmt(crossoverConnections, 2)} stored ` +
      'connections and keeps growing linearly. Per connection-minute, our keep-alive pings (a `$default` invocation with its ' +
      'rate-limit and revocation checks) and the authorizer are what we pay for the security the sample lacks.',
  ].join('\n');
}

/** The Cost section of docs/deploy.md. */
function deployCostDoc(tables: CostTables, roomSize: number, wsMessages: number): string {
  return [
    '## Cost',
    '',
    'Estimated from the operation counts that `npm run bench` measures (see ' +
      "[BENCHMARKS.md](../BENCHMARKS.md), which also shows how each figure was derived) and AWS's public " +
      `on-demand prices for ${PRICES.region}, from ${PRICES.asOf}. Re-check the price pages before relying on them.`,
    '',
    `Per million chat messages in a room of ${roomSize} members:`,
    '',
    tables.messages,
    '',
    'Per million connection-minutes (keep-alive pings every 5 minutes, sockets living 30 minutes):',
    '',
    tables.minutes,
    '',
    `A chat message to ${roomSize} members is ${wsMessages} billed WebSocket messages, so API Gateway is most of ` +
      'the bill and it grows with the room, not with the number of connected users: DynamoDB reads only the ' +
      "room's members (one Query), never the whole connections table. Free tiers, data transfer and " +
      'CloudWatch Logs (audit lines) are not included; at high volume, log ingestion can rival the rest.',
    '',
  ].join('\n');
}
