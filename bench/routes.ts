import type { Deps } from '../lambdas/core/deps.ts';
import { putGrant } from '../lambdas/core/grants.ts';
import { joinRoom } from '../lambdas/core/memberships.ts';
import { putSocketRow } from '../lambdas/core/socket-rows.ts';
import { makeLoginHandler } from '../lambdas/http-login.ts';
import { makeRefreshHandler } from '../lambdas/http-refresh.ts';
import { makeAuthorizerHandler } from '../lambdas/ws-authorizer.ts';
import { makeConnectHandler } from '../lambdas/ws-connect.ts';
import { makeDefaultHandler } from '../lambdas/ws-default.ts';
import { makeDisconnectHandler } from '../lambdas/ws-disconnect.ts';
import { RoundTripProbe, type RouteCost } from '../test/kit/round-trips.ts';
import { claimsOfToken, PASSWORD, registerAndLogin, startTestSystem } from '../test/kit/system.ts';
import {
  authorizerEvent,
  connectEvent,
  connectionInfo,
  disconnectEvent,
  httpEvent,
  messageEvent,
} from './events.ts';
import { type Section, table } from './support.ts';

export const ROOM_SIZE = 50;

export interface RouteRow {
  readonly route: string;
  readonly cost: RouteCost;
  /** Round trips allowed, and what they count. */
  readonly budget?: { readonly max: number; readonly of: 'all' | 'beforeFanOut' };
}

export interface RoutesResult {
  readonly rows: readonly RouteRow[];
  readonly section: Section;
}

/**
 * Measurement 1: the real handlers, called with API Gateway's events against dynalite, with
 * every DynamoDB call counted (operations, sequential round trips, capacity units) and the
 * `@connections` posts counted instead of sent. A room of ROOM_SIZE members.
 */
export async function measureRoutes(): Promise<RoutesResult> {
  const system = await startTestSystem(
    { RATE_LIMIT_MAX: '100000', MAX_CONNECTIONS_PER_USER: '1000' },
    undefined,
    { sweeperTimer: false },
  );
  const probe = new RoundTripProbe();
  try {
    const pair = await registerAndLogin(system, 'alice');
    const claims = claimsOfToken(pair.access_token);
    const detach = probe.attach(system.deps.db);
    const deps: Deps = { ...system.deps, api: probe.wrapApi() };
    await seedRoom(deps, claims, ROOM);
    const handlers = routeHandlers(deps);
    const rows: RouteRow[] = [];
    const measure = recorder(probe, rows);
    // A warm-up socket first, so nothing measured pays a first-call cost.
    const warm = connectionInfo();
    await handlers.authorize(authorizerEvent(warm, pair.access_token));
    await handlers.connect(connectEvent(warm, claims));
    await handlers.disconnect(disconnectEvent(warm, claims));

    const socket: MeasuredSocket = { info: connectionInfo(), claims, handlers, measure };
    const epoch = await measureOpenAndJoin(socket, pair.access_token);
    await putGrant(deps, { username: 'bench' }, TEAM, 'alice', { access: 'member' });
    await measureFrames(socket, epoch);
    await measureCloseAndAuth(socket, pair.refresh_token);
    detach();
    return { rows, section: routesSection(rows) };
  } finally {
    await system.close();
  }
}

const ROOM = 'lobby';
/** A private: room: the grant is read in the first round trip, and again beside the row's update. */
const TEAM = 'private:team';

type Claims = ReturnType<typeof claimsOfToken>;
type Measure = (route: string, run: () => Promise<unknown>, budget?: RouteRow['budget']) => Promise<void>;

/** The one socket whose routes are measured, with the handlers and the recorder. */
interface MeasuredSocket {
  readonly info: ReturnType<typeof connectionInfo>;
  readonly claims: Claims;
  readonly handlers: ReturnType<typeof routeHandlers>;
  readonly measure: Measure;
}

/** The other members, written straight into the store (their own joins are not measured). */
async function seedRoom(deps: Deps, claims: Claims, room: string): Promise<void> {
  for (let i = 1; i < ROOM_SIZE; i++) {
    const other = { ...claims, sub: `peer-${i}`, username: `peer${i}`, jti: `jti-${i}`, sid: `sid-${i}` };
    const c = { ...other, connectionId: `peer${String(i).padStart(12, '0')}=`, ip: '203.0.113.9' };
    await putSocketRow(deps, { ...c, connectedAt: Date.now(), rooms: [] });
    await joinRoom(deps, { ...c, connectedAt: Date.now() }, room);
  }
}

function routeHandlers(deps: Deps) {
  return {
    authorize: makeAuthorizerHandler(deps),
    connect: makeConnectHandler(deps),
    frame: makeDefaultHandler(deps),
    disconnect: makeDisconnectHandler(deps),
    login: makeLoginHandler(deps),
    refresh: makeRefreshHandler(deps),
  };
}

/** Runs one route with the probe reset and records its cost in `rows`; an error status throws. */
function recorder(probe: RoundTripProbe, rows: RouteRow[]): Measure {
  return async (route, run, budget) => {
    probe.reset();
    const result = await run();
    const status = (result as { statusCode?: number; principalId?: string } | undefined)?.statusCode;
    if (status !== undefined && status >= 400) throw new Error(`${route} answered ${status}`);
    rows.push({ route, cost: probe.summary(), ...(budget ? { budget } : {}) });
  };
}

/** The authorizer, `$connect` and the first join; returns the room's epoch from the join's reply. */
async function measureOpenAndJoin(
  { info, claims, handlers, measure }: MeasuredSocket,
  accessToken: string,
): Promise<string> {
  await measure(
    'authorizer (token in subprotocol)',
    () => handlers.authorize(authorizerEvent(info, accessToken)),
    {
      max: 1,
      of: 'all',
    },
  );
  await measure('$connect (with its user: room)', () => handlers.connect(connectEvent(info, claims)), {
    max: 1,
    of: 'all',
  });
  let joinedEpoch = '';
  await measure(
    `$default join (room of ${ROOM_SIZE})`,
    async () => {
      const reply = await handlers.frame(messageEvent(info, claims, { type: 'join', room: ROOM, id: 1 }));
      joinedEpoch = String((JSON.parse(String(reply.body ?? '{}')) as { epoch?: unknown }).epoch ?? '');
      return reply;
    },
    { max: 3, of: 'all' },
  );
  return joinedEpoch;
}

/** The `$default` frames after the first join: the private join, chat messages, a rejoin with since, a ping. */
async function measureFrames(
  { info, claims, handlers, measure }: MeasuredSocket,
  epoch: string,
): Promise<void> {
  const frame = (body: Record<string, unknown>) => () => handlers.frame(messageEvent(info, claims, body));
  await measure('$default join (private: room, with grant)', frame({ type: 'join', room: TEAM, id: 6 }), {
    max: 3,
    of: 'all',
  });
  await measure(
    '$default chat message (private: room)',
    frame({ type: 'message', room: TEAM, text: 'hi', id: 7 }),
    { max: 2, of: 'beforeFanOut' },
  );
  await measure(
    `$default chat message (room of ${ROOM_SIZE})`,
    frame({ type: 'message', room: ROOM, text: 'hello', id: 2 }),
    { max: 2, of: 'beforeFanOut' },
  );
  await measure(
    `$default chat message with idempotencyKey (room of ${ROOM_SIZE})`,
    frame({ type: 'message', room: ROOM, text: 'hello', idempotencyKey: 'bench-1', id: 4 }),
    { max: 3, of: 'beforeFanOut' },
  );
  await measure(
    `$default join with since, 2 missed (room of ${ROOM_SIZE})`,
    frame({ type: 'join', room: ROOM, since: { epoch, seq: 0 }, id: 5 }),
  );
  await measure('$default ping (keep-alive)', frame({ type: 'ping', id: 3 }));
}

/** `$disconnect`, then the two HTTP routes of a session. */
async function measureCloseAndAuth(
  { info, claims, handlers, measure }: MeasuredSocket,
  refreshToken: string,
) {
  await measure(`$disconnect (in a room of ${ROOM_SIZE})`, () =>
    handlers.disconnect(disconnectEvent(info, claims)),
  );
  await measure('POST /auth/login', () =>
    handlers.login(httpEvent('POST /auth/login', { body: { username: 'alice', password: PASSWORD } })),
  );
  await measure('POST /auth/refresh', () =>
    handlers.refresh(httpEvent('POST /auth/refresh', { body: { refresh_token: refreshToken } })),
  );
}

/** One table row for a route; a broken budget or a Scan on a message path goes to `failures`. */
function routeTableRow(r: RouteRow, failures: string[]): (string | number)[] {
  const counted = r.budget?.of === 'beforeFanOut' ? r.cost.roundTripsBeforeFanOut : r.cost.roundTrips;
  const ok = !r.budget || counted <= r.budget.max;
  if (!ok && r.budget) failures.push(`${r.route}: ${counted} round trips, budget ${r.budget.max}`);
  if (r.cost.scans > 0 && r.route.startsWith('$default'))
    failures.push(`${r.route}: Scans on a message path`);
  return [
    r.route,
    r.cost.operations,
    r.cost.roundTrips,
    r.cost.roundTripsBeforeFanOut === r.cost.roundTrips && r.cost.posts === 0
      ? '—'
      : r.cost.roundTripsBeforeFanOut,
    r.budget
      ? `≤ ${r.budget.max}${r.budget.of === 'beforeFanOut' ? ' before fan-out' : ''} ${ok ? '✅' : '❌'}`
      : '—',
    r.cost.readUnits,
    r.cost.writeUnits,
    r.cost.posts,
    r.cost.names.join(', '),
  ];
}

function routesSection(rows: readonly RouteRow[]): Section {
  const failures: string[] = [];
  const tableRows = rows.map((r) => routeTableRow(r, failures));
  const markdown = [
    table(
      [
        'route',
        'DynamoDB ops',
        'round trips',
        'before fan-out',
        'budget',
        'RRU',
        'WRU',
        'posts',
        'operations (@ round trip)',
      ],
      tableRows,
    ),
    '',
    "RRU/WRU: read/write request units as DynamoDB bills them on demand, from dynalite's " +
      '`ConsumedCapacity` (requested with `ReturnConsumedCapacity=TOTAL` by the probe; 4 KB reads, ' +
      'eventually consistent reads at half, 1 KB writes, a missing item still costs a unit). They count ' +
      'the base table only: DynamoDB also bills one write unit per GSI item written (`byUser`, `bySid` on ' +
      'connection rows), which the cost model adds. "posts": `PostToConnection` calls (counted, not sent).',
  ].join('\n');
  return { title: 'DynamoDB round trips per route', markdown, failures };
}
