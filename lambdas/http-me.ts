import { authenticate, bearerToken, me } from './core/auth.ts';
import type { Deps } from './core/deps.ts';
import { httpRoute, json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `GET /auth/me` (Bearer) -> `200 {sub, username, roles, exp}`. */
export function makeMeHandler(deps: Deps) {
  return httpRoute(deps.audit, async (req) => {
    const claims = await authenticate(deps, bearerToken(req.headers.authorization));
    return json(200, me(claims));
  });
}

export const handler = lambdaEntry(makeMeHandler);
