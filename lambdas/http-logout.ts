import { authenticate, bearerToken, logout } from './core/auth.ts';
import type { Deps } from './core/deps.ts';
import { httpRoute, noContent } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /auth/logout` (Bearer) -> `204`; the token, its refresh family and their sockets are done. */
export function makeLogoutHandler(deps: Deps) {
  return httpRoute(deps.audit, async (req) => {
    const claims = await authenticate(deps, bearerToken(req.headers.authorization));
    await logout(deps, claims, req);
    return noContent();
  });
}

export const handler = lambdaEntry(makeLogoutHandler);
