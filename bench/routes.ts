import type { Deps } from '../lambdas/core/deps.ts';
import { putGrant } from '../lambdas/core/grants.ts';
import { joinRoom } from '../lambdas/core/memberships.ts';
import { putSocketRow } from '../lambdas/core/socket-rows.ts';
import { issueAccessToken } from '../lambdas/core/tokens.ts';
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
    const room = 'lobby';
    // The other members, written straight into the store (their own joins are not measured).
    for (let i = 1; i < ROOM_SIZE; i++) {
      const other = { ...claims, sub: `peer-${i}`, username: `peer${i}`, jti: `jti-${i}`, sid: `sid-${i}` };
      const c = { ...other, connectionId: `peer${String(i).padStart(12, '0')}=`, ip: '203.0.113.9' };
      await putSocketRow(deps, { ...c, connectedAt: Date.now(), rooms: [] });
      await joinRoom(deps, { ...c, connectedAt: Date.now() }, room);
    }

    const authorize = makeAuthorizerHandler(deps);
    const connect = makeConnectHandler(deps);
    const frame = makeDefaultHandler(deps);
    const disconnect = makeDisconnectHandler(deps);
    const login = makeLoginHandler(deps);
    const refresh = makeRefreshHandler(deps);

    const rows: RouteRow[] = [];
    const measure = async (
      route: string,
      run: () => Promise<unknown>,
      budget?: RouteRow['budget'],
    ): Promise<void> => {
      probe.reset();
      const result = await run();
      const status = (result as { statusCode?: number; principalId?: string } | undefined)?.statusCode;
      if (status !== undefined && status >= 400) throw new Error(`${route} answered ${status}`);
      rows.push({ route, cost: probe.summary(), ...(budget ? { budget } : {}) });
    };

    // A warm-up socket first, so nothing measured pays a first-call cost.
    const warm = connectionInfo();
    await authorize(authorizerEvent(warm, pair.access_token));
    await connect(connectEvent(warm, claims));
    await disconnect(disconnectEvent(warm, claims));

    const info = connectionInfo();
    await measure(
      'authorizer (token in subprotocol)',
      () => authorize(authorizerEvent(info, pair.access_token)),
      {
        max: 1,
        of: 'all',
      },
    );
    await measure('$connect (with its user: room)', () => connect(connectEvent(info, claims)), {
      max: 1,
      of: 'all',
    });
    let joinedEpoch = '';
    const epochOf = () => joinedEpoch;
    await measure(
      `$default join (room of ${ROOM_SIZE})`,
      async () => {
        const reply = await frame(messageEvent(info, claims, { type: 'join', room, id: 1 }));
        joinedEpoch = String((JSON.parse(String(reply.body ?? '{}')) as { epoch?: unknown }).epoch ?? '');
        return reply;
      },
      { max: 3, of: 'all' },
    );
    // A private: room: the grant is read in the first round trip, and again beside the row's update.
    const team = 'private:team';
    await putGrant(deps, { username: 'bench' }, team, 'alice', { access: 'member' });
    await measure(
      '$default join (private: room, with grant)',
      () => frame(messageEvent(info, claims, { type: 'join', room: team, id: 6 })),
      { max: 3, of: 'all' },
    );
    await measure(
      '$default chat message (private: room)',
      () => frame(messageEvent(info, claims, { type: 'message', room: team, text: 'hi', id: 7 })),
      { max: 2, of: 'beforeFanOut' },
    );
    await measure(
      `$default chat message (room of ${ROOM_SIZE})`,
      () => frame(messageEvent(info, claims, { type: 'message', room, text: 'hello', id: 2 })),
      { max: 2, of: 'beforeFanOut' },
    );
    await measure(
      `$default chat message with idempotencyKey (room of ${ROOM_SIZE})`,
      () =>
        frame(
          messageEvent(info, claims, {
            type: 'message',
            room,
            text: 'hello',
            idempotencyKey: 'bench-1',
            id: 4,
          }),
        ),
      { max: 3, of: 'beforeFanOut' },
    );
    await measure(`$default join with since, 2 missed (room of ${ROOM_SIZE})`, () =>
      frame(messageEvent(info, claims, { type: 'join', room, since: { epoch: epochOf(), seq: 0 }, id: 5 })),
    );
    await measure('$default ping (keep-alive)', () =>
      frame(messageEvent(info, claims, { type: 'ping', id: 3 })),
    );
    await measure(`$disconnect (in a room of ${ROOM_SIZE})`, () => disconnect(disconnectEvent(info, claims)));
    await measure('POST /auth/login', () =>
      login(httpEvent('POST /auth/login', { body: { username: 'alice', password: PASSWORD } })),
    );
    await measure('POST /auth/refresh', () =>
      refresh(httpEvent('POST /auth/refresh', { body: { refresh_token: pair.refresh_token } })),
    );
    // A token for the authorizer CPU measurement elsewhere is not needed here.
    void issueAccessToken;
    detach();

    const failures: string[] = [];
    const tableRows = rows.map((r) => {
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
    });
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
    return { rows, section: { title: 'DynamoDB round trips per route', markdown, failures } };
  } finally {
    await system.close();
  }
}
