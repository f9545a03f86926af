import type { Deps } from './core/deps.ts';
import { exchangeIdToken } from './core/oidc.ts';
import { httpRoute, json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /auth/token-exchange {id_token}` -> `200` token pair; `404` when no OIDC issuer is configured. */
export function makeTokenExchangeHandler(deps: Deps) {
  return httpRoute(deps.audit, async (req) => json(200, await exchangeIdToken(deps, req.body(), req.ip)));
}

export const handler = lambdaEntry(makeTokenExchangeHandler);
