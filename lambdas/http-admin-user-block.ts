import { blockUser, unblockUser } from './core/admin.ts';
import type { Deps } from './core/deps.ts';
import { roleRoute } from './edge/admin.ts';
import { noContent } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /admin/users/{username}/block {duration_s, reason}` and `DELETE` of the same path (role admin). */
export function makeUserBlockHandler(deps: Deps) {
  return roleRoute(deps, ['admin'], async (req, caller) => {
    if (req.method === 'DELETE') await unblockUser(deps, caller, req.pathParameters.username);
    else await blockUser(deps, caller, req.pathParameters.username, req.body());
    return noContent();
  });
}

export const handler = lambdaEntry(makeUserBlockHandler);
