import { refresh } from './core/auth.ts';
import type { Deps } from './core/deps.ts';
import { httpRoute, json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /auth/refresh {refresh_token}` -> `200` new pair; the old refresh token is spent. */
export function makeRefreshHandler(deps: Deps) {
  return httpRoute(deps.audit, async (req) => json(200, await refresh(deps, req.body(), req)));
}

export const handler = lambdaEntry(makeRefreshHandler);
