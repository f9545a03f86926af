import type { Deps } from '../lambdas/core/deps.ts';
import type { SqsBatchResponse, SqsEvent } from '../lambdas/edge/sqs-types.ts';
import { makeFanoutWorkerHandler } from '../lambdas/fanout-worker.ts';
import { FUNCTIONS } from '../lambdas/functions.ts';
import { makeBlocksHandler } from '../lambdas/http-admin-blocks.ts';
import { makeConnectionsHandler } from '../lambdas/http-admin-connections.ts';
import { makeIpBlockHandler } from '../lambdas/http-admin-ip-block.ts';
import { makeRoomGrantsHandler } from '../lambdas/http-admin-room-grants.ts';
import { makeRoomMessagesHandler } from '../lambdas/http-admin-room-messages.ts';
import { makeUserBlockHandler } from '../lambdas/http-admin-user-block.ts';
import { makeUserRevokeHandler } from '../lambdas/http-admin-user-revoke.ts';
import { makeHealthHandler } from '../lambdas/http-health.ts';
import { makeJwksHandler } from '../lambdas/http-jwks.ts';
import { makeLoginHandler } from '../lambdas/http-login.ts';
import { makeLogoutHandler } from '../lambdas/http-logout.ts';
import { makeMeHandler } from '../lambdas/http-me.ts';
import { makeRefreshHandler } from '../lambdas/http-refresh.ts';
import { makeRegisterHandler } from '../lambdas/http-register.ts';
import { makeTokenExchangeHandler } from '../lambdas/http-token-exchange.ts';
import { makeWsTicketHandler } from '../lambdas/http-ws-ticket.ts';
import { makeSweeperHandler } from '../lambdas/sweeper.ts';
import { makeAuthorizerHandler } from '../lambdas/ws-authorizer.ts';
import { makeConnectHandler } from '../lambdas/ws-connect.ts';
import { makeDefaultHandler } from '../lambdas/ws-default.ts';
import { makeDisconnectHandler } from '../lambdas/ws-disconnect.ts';
import type { HttpHandler, HttpRoute } from './http-gateway.ts';
import type { WsRouteHandlers } from './ws-gateway.ts';

/** The factory of each function of the manifest: the same code the Lambda `handler` exports run. */
const HTTP_FACTORIES: Record<string, (deps: Deps) => HttpHandler> = {
  'http-register': makeRegisterHandler,
  'http-login': makeLoginHandler,
  'http-refresh': makeRefreshHandler,
  'http-logout': makeLogoutHandler,
  'http-me': makeMeHandler,
  'http-jwks': makeJwksHandler,
  'http-health': () => makeHealthHandler(),
  'http-ws-ticket': makeWsTicketHandler,
  'http-token-exchange': makeTokenExchangeHandler,
  'http-admin-user-block': makeUserBlockHandler,
  'http-admin-ip-block': makeIpBlockHandler,
  'http-admin-user-revoke': makeUserRevokeHandler,
  'http-admin-connections': makeConnectionsHandler,
  'http-admin-room-messages': makeRoomMessagesHandler,
  'http-admin-room-grants': makeRoomGrantsHandler,
  'http-admin-blocks': makeBlocksHandler,
};

const WS_FACTORIES: Record<string, (deps: Deps) => (event: never) => Promise<unknown>> = {
  'ws-authorizer': makeAuthorizerHandler,
  'ws-connect': makeConnectHandler,
  'ws-default': makeDefaultHandler,
  'ws-disconnect': makeDisconnectHandler,
};

const WS_ROUTE_NAMES = {
  authorizer: 'authorizer',
  $connect: 'connect',
  $default: 'default',
  $disconnect: 'disconnect',
} as const;

function factory<T>(table: Record<string, T>, name: string): T {
  const make = table[name];
  if (!make) throw new Error(`the local system has no handler for function ${name}`);
  return make;
}

/** Every HTTP route of the manifest, bound to its handler; fails if a function has no factory here. */
export function httpRoutes(deps: Deps): HttpRoute[] {
  return FUNCTIONS.flatMap((fn) => {
    if (!fn.httpRoutes?.length) return [];
    const handler = factory(HTTP_FACTORIES, fn.name)(deps);
    return fn.httpRoutes.map((routeKey) => ({ routeKey, handler }));
  });
}

/** The WebSocket routes of the manifest, bound to their handlers. */
export function wsRoutes(deps: Deps): WsRouteHandlers {
  const routes: Record<string, unknown> = {};
  for (const fn of FUNCTIONS) {
    if (!fn.wsRoutes?.length) continue;
    const handler = factory(WS_FACTORIES, fn.name)(deps);
    for (const route of fn.wsRoutes) routes[WS_ROUTE_NAMES[route]] = handler;
  }
  return routes as WsRouteHandlers;
}

/** The scheduled functions of the manifest, for the local timer. */
export function scheduledJobs(deps: Deps): (() => Promise<unknown>)[] {
  return FUNCTIONS.filter((fn) => fn.schedule).map((fn) =>
    factory({ sweeper: makeSweeperHandler }, fn.name)(deps),
  );
}

/** The fan-out queue's worker of the manifest (`fanoutQueue: 'work'`), for the local queue. */
export function queueWorker(deps: Deps): (event: SqsEvent) => Promise<SqsBatchResponse> {
  const workers = FUNCTIONS.filter((fn) => fn.fanoutQueue === 'work');
  if (workers.length !== 1) throw new Error('the manifest must have exactly one fan-out worker');
  return factory({ 'fanout-worker': makeFanoutWorkerHandler }, (workers[0] as { name: string }).name)(deps);
}
