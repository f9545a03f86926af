import type { Deps } from '../lambdas/core/deps.ts';
import type { SqsBatchResponse, SqsEvent } from '../lambdas/edge/sqs-types.ts';
import { FUNCTIONS, type FunctionSpec } from '../lambdas/functions.ts';
import type { HttpHandler, HttpRoute } from './http-gateway.ts';
import type { WsRouteHandlers } from './ws-gateway.ts';

type Factory = (deps: Deps) => (event: never) => Promise<unknown>;

/** The gateway's name of each WebSocket route of the manifest. */
const WS_ROUTE_NAMES = {
  authorizer: 'authorizer',
  $connect: 'connect',
  $default: 'default',
  $disconnect: 'disconnect',
} as const;

/**
 * The factory of a function of the manifest: the one `make…Handler` its entry file
 * (`lambdas/<name>.ts`) exports, the same code its Lambda `handler` runs. Loading the
 * module does not build the Lambda's own runtime: `lambdaEntry` builds it on first use.
 */
export async function loadFactory(fn: FunctionSpec): Promise<Factory> {
  const module = (await import(`../lambdas/${fn.name}.ts`)) as Record<string, unknown>;
  const found = Object.entries(module).filter(
    ([key, value]) => /^make\w*Handler$/.test(key) && typeof value === 'function',
  );
  const [first] = found;
  if (!first || found.length > 1) {
    throw new Error(
      `lambdas/${fn.name}.ts must export exactly one make…Handler(deps), found ${found.length}`,
    );
  }
  return first[1] as Factory;
}

/** Each function of the manifest that `pick` selects, with its handler built on `deps`. */
async function load(deps: Deps, pick: (fn: FunctionSpec) => boolean) {
  const picked = FUNCTIONS.filter(pick);
  const factories = await Promise.all(picked.map(loadFactory));
  return picked.map((fn, i) => ({ fn, handler: (factories[i] as Factory)(deps) }));
}

/** Every HTTP route of the manifest, bound to its handler. */
export async function httpRoutes(deps: Deps): Promise<HttpRoute[]> {
  const loaded = await load(deps, (fn) => Boolean(fn.httpRoutes?.length));
  return loaded.flatMap(({ fn, handler }) =>
    (fn.httpRoutes ?? []).map((routeKey) => ({ routeKey, handler: handler as HttpHandler })),
  );
}

/** The WebSocket routes of the manifest, bound to their handlers. */
export async function wsRoutes(deps: Deps): Promise<WsRouteHandlers> {
  const routes: Record<string, unknown> = {};
  for (const { fn, handler } of await load(deps, (fn) => Boolean(fn.wsRoutes?.length))) {
    for (const route of fn.wsRoutes ?? []) routes[WS_ROUTE_NAMES[route]] = handler;
  }
  return routes as WsRouteHandlers;
}

/** The scheduled functions of the manifest, for the local timer. */
export async function scheduledJobs(deps: Deps): Promise<(() => Promise<unknown>)[]> {
  const loaded = await load(deps, (fn) => fn.schedule !== undefined);
  return loaded.map(({ handler }) => handler as () => Promise<unknown>);
}

/** The fan-out queue's worker of the manifest (`fanoutQueue: 'work'`), for the local queue. */
export async function queueWorker(deps: Deps): Promise<(event: SqsEvent) => Promise<SqsBatchResponse>> {
  const workers = await load(deps, (fn) => fn.fanoutQueue === 'work');
  const [worker] = workers;
  if (!worker || workers.length !== 1) throw new Error('the manifest must have exactly one fan-out worker');
  return worker.handler as (event: SqsEvent) => Promise<SqsBatchResponse>;
}
