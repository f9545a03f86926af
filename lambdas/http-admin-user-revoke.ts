import { revokeUser } from './core/admin.ts';
import type { Deps } from './core/deps.ts';
import { roleRoute } from './edge/admin.ts';
import { noContent } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /admin/users/{username}/revoke` (role admin): every token issued before now is refused, sockets closed. */
export function makeUserRevokeHandler(deps: Deps) {
  return roleRoute(deps, ['admin'], async (req, caller) => {
    await revokeUser(deps, caller, req.pathParameters.username);
    return noContent();
  });
}

export const handler = lambdaEntry(makeUserRevokeHandler);
