import type { Deps } from '../lambdas/core/deps.ts';
import { FUNCTIONS } from '../lambdas/functions.ts';
import { makeHealthHandler } from '../lambdas/http-health.ts';
import { makeJwksHandler } from '../lambdas/http-jwks.ts';
import { makeLoginHandler } from '../lambdas/http-login.ts';
import { makeLogoutHandler } from '../lambdas/http-logout.ts';
import { makeMeHandler } from '../lambdas/http-me.ts';
import { makeRefreshHandler } from '../lambdas/http-refresh.ts';
import { makeRegisterHandler } from '../lambdas/http-register.ts';
import type { HttpHandler, HttpRoute } from './http-gateway.ts';

/** The factory of each function of the manifest: the same code the Lambda `handler` exports run. */
const HTTP_FACTORIES: Record<string, (deps: Deps) => HttpHandler> = {
  'http-register': makeRegisterHandler,
  'http-login': makeLoginHandler,
  'http-refresh': makeRefreshHandler,
  'http-logout': makeLogoutHandler,
  'http-me': makeMeHandler,
  'http-jwks': makeJwksHandler,
  'http-health': () => makeHealthHandler(),
};

/** Every HTTP route of the manifest, bound to its handler; fails if a function has no factory here. */
export function httpRoutes(deps: Deps): HttpRoute[] {
  const routes: HttpRoute[] = [];
  for (const fn of FUNCTIONS) {
    if (!fn.httpRoutes?.length) continue;
    const make = HTTP_FACTORIES[fn.name];
    if (!make) throw new Error(`the local system has no handler for function ${fn.name}`);
    const handler = make(deps);
    for (const routeKey of fn.httpRoutes) routes.push({ routeKey, handler });
  }
  return routes;
}
