import { requireRole } from '../core/admin.ts';
import { authenticate, bearerToken } from '../core/auth.ts';
import type { Deps } from '../core/deps.ts';
import type { AccessClaims } from '../core/tokens.ts';
import { type HttpRequest, type HttpResult, httpRoute } from './http.ts';

/** An HTTP route for callers holding one of `roles`: 401 without a valid token, 403 without the role. */
export function roleRoute(
  deps: Deps,
  roles: readonly string[],
  run: (req: HttpRequest, caller: AccessClaims) => Promise<HttpResult>,
) {
  return httpRoute(deps.audit, async (req) => {
    const caller = await authenticate(deps, bearerToken(req.headers.authorization));
    requireRole(caller, roles);
    return run(req, caller);
  });
}
